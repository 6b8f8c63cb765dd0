"""Events telemetry publishes for downstream domains (compliance) to handle."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class TelemetryStored:
    """Records were stored, attached or re-judged for these allocations.

    `windows` maps an allocation id to the earliest and latest observed time (UTC) of the
    records this change touched: anything derived from that period should be re-evaluated.
    """

    windows: dict[int, tuple[dt.datetime, dt.datetime]]
    received_at: dt.datetime
