"""The database reads the payload fields the rules need as columns (`load_events_from`):
for any stored payload, valid or not, the columns must be what the kernel's own coding of
the same records gives (`Observations.of`), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tagwatch.compliance.engine import (
    OBSERVATION_TYPES,
    OBSERVED_FIELDS,
    Observation,
    Observations,
)
from tagwatch.telemetry.models import DeviceEvent
from tagwatch.telemetry.repository import PayloadField, load_events_from

_NAMES = sorted({f.name for f in OBSERVED_FIELDS} | {"unit", "method"})
_CODES = sorted({str(v) for f in OBSERVED_FIELDS for v in (f.codes or {}) if isinstance(v, str)})
_counter = itertools.count(1)

values = st.one_of(
    st.sampled_from(_CODES),
    st.booleans(),
    st.sampled_from(["", "True", "true", "1", "0"]),
    st.booleans(),
    st.none(),
    st.integers(-1000, 1000),
    st.floats(-1000, 1000, allow_nan=False),
    st.lists(st.integers(0, 3), max_size=2),
)
records = st.lists(
    st.tuples(
        st.sampled_from([*OBSERVATION_TYPES, "gps", "other"]),
        st.integers(0, 50),
        st.dictionaries(st.sampled_from(_NAMES), values, max_size=6),
    ),
    min_size=1,
    max_size=20,
)


def columns(observations: Observations) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {
        "record_id": observations.record_id.tolist(),
        "t_ms": observations.t_ms.tolist(),
        "type": observations.type.tolist(),
    }
    for name, column in observations.fields.items():
        # NaN never equals itself: compared as None.
        found[name] = [None if v != v else v for v in column.tolist()]
    return found


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=records)
def test_payload_columns_read_in_the_database_match_the_kernels_coding(
    db: Session, rows: list[tuple[str, int, dict[str, Any]]]
) -> None:
    allocation_id = 10**9 + next(_counter)
    savepoint = db.begin_nested()
    try:
        stored = [
            DeviceEvent(
                dedupe_key=f"columns-{allocation_id}-{i}",
                device_serial="COL-1",
                allocation_id=allocation_id,
                type=kind,
                t_ms=1_000 * t,
                received_ms=0,
                payload=payload,
            )
            for i, (kind, t, payload) in enumerate(rows)
        ]
        db.add_all(stored)
        db.flush()
        fields = [PayloadField(*f) for f in OBSERVED_FIELDS]
        table = load_events_from(db, {allocation_id: 0}, 10**6, OBSERVATION_TYPES, fields)
        read = Observations(
            table.allocation_id, table.record_id, table.t_ms, table.type, table.fields
        )
        ordered = sorted(stored, key=lambda e: (e.t_ms, e.id))
        coded = Observations.of(
            (allocation_id, Observation(e.id, e.t_ms, e.type, e.payload)) for e in ordered
        )
        assert table.allocation_id.tolist() == [allocation_id] * len(rows)
        assert columns(read) == columns(coded)
        assert all(
            read.fields[f.name].dtype == (np.float64 if f.codes is None else np.int8)
            for f in OBSERVED_FIELDS
        )
    finally:
        savepoint.rollback()
