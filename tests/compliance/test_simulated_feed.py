"""The simulator's feed (late buffered uploads, retransmitted duplicates, noisy fixes),
delivered in its own upload order in small batches or in a random re-batching, gives the
same violations as one delivery of everything."""

from __future__ import annotations

import datetime as dt
import itertools
from functools import cache
from typing import Any

from compliance_cases import make_case, record_keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from test_order_independence import rolled_back, stored

from tagwatch.simulate.cohort import generate_cohort
from tagwatch.simulate.devices import simulate_blocks

UTC = dt.UTC
START = dt.datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
NOW = dt.datetime(2026, 11, 21, 16, 0, tzinfo=UTC)


@cache
def simulated_records() -> tuple[tuple[float, dict[str, Any]], ...]:
    """(upload time, record) for one simulated GPS tag over a night, in upload order."""
    document = generate_cohort(12, 7, START.date() - dt.timedelta(days=60))
    serials = [d["serial"] for d in document["devices"] if d["type"] == "gps_tag"]
    wanted = serials[0]
    records = [
        (upload, record)
        for _day, block in simulate_blocks(document, START, 0.4, 7)
        for upload, record in block
        if record["device"] == wanted
    ]
    records.sort(key=lambda pair: pair[0])
    assert len(records) > 100
    return tuple(records)


def as_case(records: list[dict[str, Any]], serial: str) -> list[dict[str, Any]]:
    return [{**r, "device": serial} for r in records]


def deliver(db: Session, batches: list[list[dict[str, Any]]]) -> None:
    from compliance_cases import feed

    for batch in batches:
        if batch:
            feed(db, batch, NOW)


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_simulated_feed_in_any_batching_gives_the_one_shot_result(
    db: Session, data: st.DataObject
) -> None:
    with rolled_back(db):
        case = make_case(db, START - dt.timedelta(days=1))
        timed = simulated_records()
        records = as_case([r for _, r in timed], case.serial)
        with rolled_back(db):
            deliver(db, [records])
            expected = stored(db, case)
            assert record_keys(db)  # the records were stored and attached
            assert expected  # the night is not spent at the case's address: there is work
        with rolled_back(db):
            # As the device uploads: one batch per half hour of upload time.
            by_upload = itertools.groupby(
                zip(timed, records, strict=True), key=lambda pair: int(pair[0][0] // 1800)
            )
            deliver(db, [[r for _, r in group] for _, group in by_upload])
            assert stored(db, case) == expected
        with rolled_back(db):
            order = data.draw(st.permutations(range(len(records))))
            cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=5)))
            shuffled = [records[i] for i in order]
            bounds = [0, *cuts, len(records)]
            deliver(db, [shuffled[lo:hi] for lo, hi in itertools.pairwise(bounds)])
            assert stored(db, case) == expected
