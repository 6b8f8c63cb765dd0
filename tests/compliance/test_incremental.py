"""Evaluation after records arrive re-derives only the rules that read the kinds of record
that arrived, from a short window: the stored result is still exactly what re-deriving
every rule over the whole history finds."""

from __future__ import annotations

import datetime as dt
import itertools
import os

from compliance_cases import feed, gps, make_case, status
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from test_order_independence import FITTED, NOW, PLACES, TRACK_START, rolled_back, stored, tracks

from tagwatch.compliance import service
from tagwatch.compliance.rules import ALL_RECORDS, RULES


@settings(
    max_examples=int(os.environ.get("TAGWATCH_COMPLIANCE_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_incremental_evaluation_equals_a_full_re_derivation(
    db: Session, data: st.DataObject
) -> None:
    with rolled_back(db):
        case = make_case(db, FITTED)
        records = data.draw(tracks(case.serial))
        assume(records)
        order = data.draw(st.permutations(range(len(records))))
        cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=6)))
        arriving = [records[i] for i in order]
        for low, high in itertools.pairwise([0, *cuts, len(arriving)]):
            if high > low:
                feed(db, arriving[low:high], NOW)
        incremental = stored(db, case)
        full = service.evaluate_allocation(db, case.allocation_id, FITTED, NOW)
        assert (full.opened, full.updated, full.closed) == ([], [], [])
        assert stored(db, case) == incremental


def test_a_fix_leaves_a_standing_battery_episode_alone_and_a_status_re_derives_it(
    db: Session,
) -> None:
    case = make_case(db, FITTED)
    home = PLACES["home"]
    feed(db, [status(case.serial, TRACK_START, battery_pct=10)], NOW)
    [battery] = [v for v in service.standing(db, case.allocation_id) if v.rule_id == "battery.low"]
    assert battery.end is None
    found_at = battery.evaluated_at
    later = NOW + dt.timedelta(minutes=5)
    feed(db, [gps(case.serial, TRACK_START + dt.timedelta(hours=2), home[0], home[1])], later)
    db.refresh(battery)
    assert battery.evaluated_at == found_at  # not re-derived: no status record arrived
    recharged = TRACK_START + dt.timedelta(hours=3)
    feed(db, [status(case.serial, recharged, battery_pct=90)], later)
    db.refresh(battery)
    assert (battery.end, battery.evaluated_at) == (recharged, later)


def test_rules_that_change_with_time_or_read_every_record_are_always_re_derived() -> None:
    always = {rule_id for rule_id, rule in RULES.items() if rule.reads == ALL_RECORDS}
    assert always == {
        "curfew.absence.gps",
        "curfew.absence.rf",
        "curfew.no_presence",
        "zone.exclusion.entry",
        "zone.inclusion.exit",
        "device.loss_of_communication",
        "device.loss_of_location",
    }
    assert all(rule.reads for rule in RULES.values())


def test_an_absence_streamed_fix_by_fix_is_found_once_it_outlasts_the_grace(db: Session) -> None:
    """Each fix arrives alone, evaluated at its arrival: the absence is too short to be a
    violation at first, and becomes one (from its first fix) once it outlasts the grace."""
    case = make_case(db, FITTED)
    away = PLACES["away"]
    start = TRACK_START + dt.timedelta(hours=1)  # inside the curfew
    for minute in range(12):
        moment = start + dt.timedelta(minutes=minute)
        feed(db, [gps(case.serial, moment, away[0], away[1])], moment + dt.timedelta(seconds=1))
    absences = [
        v for v in service.standing(db, case.allocation_id) if v.rule_id == "curfew.absence.gps"
    ]
    assert [(v.start, v.end) for v in absences] == [(start, None)]
    assert len(absences[0].evidence_fixes) == 12
