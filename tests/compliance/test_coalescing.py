"""Evaluation is deferred to the end of the outermost publish (or `events.batch`) and runs
once per allocation, from the earliest moment any event asked for; the violations are the
ones per-record evaluation finds."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from typing import Any

import pytest
from compliance_cases import ZONE_BNG, feed, gps, make_case
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_order_independence import FITTED, NOW, TRACK_START, rolled_back, stored, tracks

from tagwatch import events
from tagwatch.cases.events import AllocationRecorded, OrderChanged
from tagwatch.compliance import service
from tagwatch.compliance.handlers import PendingEvaluation
from tagwatch.compliance.models import Violation
from tagwatch.telemetry.events import TelemetryStored

INSIDE = (ZONE_BNG[0][0] + 150, ZONE_BNG[0][1] + 150)


class EvaluationLog:
    """Calls through to the real evaluation and notes which allocations each run covered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs: list[dict[int, dt.datetime]] = []
        real = service.evaluate_allocations

        def logged(
            session: Session, windows: Any, now: dt.datetime, *args: Any, **kwargs: Any
        ) -> Any:
            self.runs.append(dict(windows))
            return real(session, windows, now, *args, **kwargs)

        monkeypatch.setattr(service, "evaluate_allocations", logged)


def breach(serial: str, minutes: range) -> list[dict[str, Any]]:
    return [
        gps(serial, TRACK_START + dt.timedelta(minutes=m), INSIDE[0], INSIDE[1]) for m in minutes
    ]


def violation_count(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(Violation)) or 0)


def test_one_evaluation_for_many_events_in_a_batch(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = make_case(db, FITTED)
    log = EvaluationLog(monkeypatch)
    with events.batch(db):
        feed(db, breach(case.serial, range(0, 5)), NOW)
        feed(db, breach(case.serial, range(5, 10)), NOW + dt.timedelta(minutes=1))
        events.publish(db, OrderChanged(order_id=case.order_id, version=2))
        events.publish(
            db,
            AllocationRecorded(case.allocation_id, case.order_id, case.serial, FITTED, None),
        )
        assert log.runs == []  # nothing evaluated yet: the records alone are stored
        assert violation_count(db) == 0
    # Once, for the one allocation, from the start (the order and allocation events asked
    # for all of it), at the latest time any event was received.
    assert [list(run) for run in log.runs] == [[case.allocation_id]]
    zone = [v for v in service.standing(db, case.allocation_id) if v.rule_id.startswith("zone")]
    assert [v.status for v in zone] == ["confirmed"]
    assert zone[0].evaluated_at >= NOW + dt.timedelta(minutes=1)


def test_each_publish_outside_a_batch_settles_at_once(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = make_case(db, FITTED)
    log = EvaluationLog(monkeypatch)
    feed(db, breach(case.serial, range(0, 5)), NOW)
    assert len(log.runs) == 1 and violation_count(db) > 0
    # An allocation recorded: the telemetry handler attaches records (publishing
    # TelemetryStored), compliance re-evaluates; both asks are one evaluation.
    events.publish(
        db, AllocationRecorded(case.allocation_id, case.order_id, case.serial, FITTED, None)
    )
    assert len(log.runs) == 2 and list(log.runs[1]) == [case.allocation_id]


def test_pending_evaluations_merge_to_the_earliest_since_and_latest_time() -> None:
    t = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    asks = [
        (1, t + dt.timedelta(hours=2), t + dt.timedelta(hours=5)),
        (1, t, t + dt.timedelta(hours=3)),
        (2, t + dt.timedelta(hours=1), t + dt.timedelta(hours=3)),
        (1, t + dt.timedelta(hours=1), t + dt.timedelta(hours=4)),
    ]
    for ordered in itertools.permutations(asks):
        pending = PendingEvaluation()
        for allocation_id, since, now in ordered:
            pending.add(allocation_id, since, now)
        assert pending.windows == {
            1: (t, t + dt.timedelta(hours=5)),
            2: (t + dt.timedelta(hours=1), t + dt.timedelta(hours=3)),
        }


def test_a_failing_batch_leaves_no_pending_work(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = make_case(db, FITTED)
    log = EvaluationLog(monkeypatch)
    window = {case.allocation_id: (TRACK_START, TRACK_START)}
    with pytest.raises(RuntimeError, match="boom"), events.batch(db):
        events.publish(db, TelemetryStored(windows=window, received_at=NOW))
        raise RuntimeError("boom")
    # The next settling, for another event, does not run the failed transaction's work.
    with events.batch(db):
        pass
    assert log.runs == []
    with pytest.raises(RuntimeError, match="outside publish"):
        events.defer(db, "key", PendingEvaluation)


def test_nested_batches_settle_at_the_outermost_end(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = make_case(db, FITTED)
    log = EvaluationLog(monkeypatch)
    with events.batch(db):
        with events.batch(db):
            feed(db, breach(case.serial, range(0, 3)), NOW)
        assert log.runs == []
        feed(db, breach(case.serial, range(3, 6)), NOW)
    assert len(log.runs) == 1


@settings(
    max_examples=int(os.environ.get("TAGWATCH_COMPLIANCE_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_coalesced_evaluation_finds_what_per_record_evaluation_finds(
    db: Session, data: st.DataObject
) -> None:
    """Every record evaluated on its own, in arrival order, against the same records sent in
    a few batches inside one `events.batch`: one evaluation at the end."""
    with rolled_back(db):
        case = make_case(db, FITTED)
        records = data.draw(tracks(case.serial))
        assume(records)
        order = data.draw(st.permutations(range(len(records))))
        arriving = [records[i] for i in order]
        with rolled_back(db):
            for record in arriving:
                feed(db, [record], NOW)
            per_record = stored(db, case)
        with rolled_back(db):
            cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=4)))
            with events.batch(db):
                for low, high in itertools.pairwise([0, *cuts, len(arriving)]):
                    if high > low:
                        feed(db, arriving[low:high], NOW)
            assert stored(db, case) == per_record
