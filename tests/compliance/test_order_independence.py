"""Stored violations do not depend on how records were batched or ordered, and re-evaluation
changes nothing: records go through the real ingestion pipeline, whose TelemetryStored event
drives the compliance handler, on the real database."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager

from compliance_cases import (
    HOME_BNG,
    ZONE_BNG,
    Case,
    feed,
    gps,
    make_case,
    record_keys,
    status,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tagwatch.compliance import service
from tagwatch.compliance.models import Violation

UTC = dt.UTC
# The night the clocks go forward: the curfew runs 19:00 GMT to 07:00 BST (06:00 UTC).
FITTED = dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
TRACK_START = dt.datetime(2026, 3, 28, 18, 30, tzinfo=UTC)
NOW = dt.datetime(2026, 3, 29, 12, 0, tzinfo=UTC)

PLACES = {
    "home": (HOME_BNG[0] + 5, HOME_BNG[1] + 5, 8.0),
    "away": (HOME_BNG[0] + 400, HOME_BNG[1] + 300, 6.0),
    "zone": (ZONE_BNG[0][0] + 150, ZONE_BNG[0][1] + 150, 5.0),
    "edge": (ZONE_BNG[0][0] + 8, ZONE_BNG[0][1] + 150, 25.0),
}


@st.composite
def tracks(draw: st.DrawFn, serial: str) -> list[dict[str, object]]:
    """A few hours of fixes moving between places, with silences and status reports."""
    records: list[dict[str, object]] = []
    minute = 0
    for _ in range(draw(st.integers(2, 6))):
        place = draw(st.sampled_from([*PLACES, "silent"]))
        length = draw(st.integers(2, 25))
        step = draw(st.sampled_from([1, 2]))
        if place != "silent":
            x, y, accuracy = PLACES[place]
            for m in range(minute, minute + length, step):
                jitter = draw(st.floats(-3, 3))
                t = TRACK_START + dt.timedelta(minutes=m)
                records.append(gps(serial, t, x + jitter, y - jitter, accuracy))
        minute += length
    for m in draw(st.lists(st.integers(0, minute), max_size=3, unique=True)):
        strap = draw(st.sampled_from(["ok", "open"]))
        battery = draw(st.integers(1, 100))
        t = TRACK_START + dt.timedelta(minutes=m, seconds=30)
        records.append(status(serial, t, strap=strap, battery_pct=battery))
    return records


@contextmanager
def rolled_back(db: Session) -> Iterator[None]:
    savepoint = db.begin_nested()
    try:
        yield
    finally:
        savepoint.rollback()


def stored(db: Session, case: Case) -> list[tuple[object, ...]]:
    """Standing violations in a form comparable across stores (evidence as dedupe keys)."""
    keys = record_keys(db)
    rows = []
    for v in service.standing(db, case.allocation_id):
        rows.append(
            (
                v.rule_id,
                v.condition_key,
                v.start,
                v.end,
                v.status,
                v.rule_version,
                tuple(sorted(keys[("fix", i)] for i in v.evidence_fixes)),
                tuple(sorted(keys[("event", i)] for i in v.evidence_events)),
            )
        )
    return sorted(rows, key=repr)


@settings(
    max_examples=int(os.environ.get("TAGWATCH_COMPLIANCE_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_batches_in_any_order_give_the_one_shot_result(db: Session, data: st.DataObject) -> None:
    with rolled_back(db):
        case = make_case(db, FITTED)
        records = data.draw(tracks(case.serial))
        assume(records)  # with no record at all only the clock evaluates (tested elsewhere)
        order = data.draw(st.permutations(range(len(records))))
        cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=4)))
        with rolled_back(db):
            feed(db, records, NOW)
            expected = stored(db, case)
            again = service.evaluate_allocation(db, case.allocation_id, FITTED, NOW)
            assert (again.opened, again.updated, again.closed) == ([], [], [])
            assert stored(db, case) == expected
        with rolled_back(db):
            shuffled = [records[i] for i in order]
            bounds = [0, *cuts, len(shuffled)]
            for lo, hi in itertools.pairwise(bounds):
                if hi > lo:
                    feed(db, shuffled[lo:hi], NOW)
            assert stored(db, case) == expected


def test_a_breach_is_found_once_and_a_late_upload_splits_it(db: Session) -> None:
    case = make_case(db, FITTED)
    zone = PLACES["zone"]
    inside = [
        gps(case.serial, TRACK_START + dt.timedelta(minutes=m), zone[0], zone[1]) for m in range(10)
    ]
    away = PLACES["away"]
    feed(db, inside, NOW)
    [violation] = [
        v for v in service.standing(db, case.allocation_id) if v.rule_id.startswith("zone")
    ]
    assert violation.status == "confirmed"
    assert violation.end is None
    assert len(violation.evidence_fixes) == 10
    # A buffered upload shows the person left the zone for a while in the middle.
    late = [
        gps(case.serial, TRACK_START + dt.timedelta(minutes=4, seconds=s), away[0], away[1])
        for s in (20, 30, 40)
    ]
    changes = service.evaluate_and_publish(db, {}, NOW)
    assert not changes
    feed(db, late, NOW)
    zone_rows = sorted(
        (v for v in service.standing(db, case.allocation_id) if v.rule_id.startswith("zone")),
        key=lambda v: v.start,
    )
    assert [(v.start, v.end) for v in zone_rows] == [
        (TRACK_START, TRACK_START + dt.timedelta(minutes=4, seconds=20)),
        (TRACK_START + dt.timedelta(minutes=5), None),
    ]
    assert zone_rows[0].id == violation.id  # the same violation, now ended
    assert all(isinstance(v, Violation) for v in zone_rows)
