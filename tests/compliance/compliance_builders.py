"""Small builders for kernel inputs, shared by the compliance tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tagwatch.compliance.engine import (
    AllocationSpec,
    Fixes,
    Intervals,
    Observation,
)

MINUTE = 60_000
HOUR = 60 * MINUTE


def fixes(rows: Sequence[tuple[int, float, float, float]], allocation_id: int = 1) -> Fixes:
    """Fixes from (t_ms, x, y, accuracy) rows; record ids are 1000 + position."""
    n = len(rows)
    return Fixes(
        allocation_id=np.full(n, allocation_id, np.int64),
        record_id=np.arange(1000, 1000 + n, dtype=np.int64),
        t_ms=np.array([r[0] for r in rows], np.int64),
        x=np.array([r[1] for r in rows], np.float64),
        y=np.array([r[2] for r in rows], np.float64),
        accuracy_m=np.array([r[3] for r in rows], np.float64),
    ).sorted()


def observations(rows: Sequence[tuple[int, str, dict[str, Any]]]) -> tuple[Observation, ...]:
    """Observations from (t_ms, type, fields) rows; record ids are 5000 + position."""
    return tuple(Observation(5000 + i, t, kind, fields) for i, (t, kind, fields) in enumerate(rows))


def allocation(**kwargs: Any) -> AllocationSpec:
    kwargs.setdefault("allocation_id", 1)
    kwargs.setdefault("active", Intervals.of([(0, 1000 * HOUR)]))
    return AllocationSpec(**kwargs)
