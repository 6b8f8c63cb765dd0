"""Evaluating a transaction's records from memory (the fixes it stored, `telemetry.recent`)
derives the same violations as reading them all back from the database."""

from __future__ import annotations

import datetime as dt
import itertools
import os

from compliance_cases import feed, gps, make_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from test_order_independence import FITTED, NOW, TRACK_START, rolled_back, stored, tracks

from tagwatch.events import batch
from tagwatch.telemetry import recent

FAR = (450_000.0, 400_000.0)  # a step there and back is too fast: speed-flagged


@settings(
    max_examples=int(os.environ.get("TAGWATCH_COMPLIANCE_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_records_held_in_memory_derive_what_the_database_does(
    db: Session, data: st.DataObject
) -> None:
    with rolled_back(db):
        case = make_case(db, FITTED)
        records = data.draw(tracks(case.serial))
        for minute in data.draw(st.lists(st.integers(0, 120), max_size=2, unique=True)):
            t = TRACK_START + dt.timedelta(minutes=minute, seconds=15)
            records.append(gps(case.serial, t, *FAR))
        order = data.draw(st.permutations(records))
        committed = data.draw(st.integers(0, len(order)))
        cuts = sorted(data.draw(st.lists(st.integers(committed, len(order)), max_size=3)))
        found = []
        for from_memory in (True, False):
            with rolled_back(db):
                if committed:
                    feed(db, order[:committed], NOW)
                    recent.forget(db)  # as after a commit
                with batch(db):  # evaluated once, when the block ends
                    for low, high in itertools.pairwise([committed, *cuts, len(order)]):
                        if high > low:
                            feed(db, order[low:high], NOW)
                    if not from_memory:
                        recent.forget(db)
                found.append(stored(db, case))
        assert found[0] == found[1]
