"""The delays an alert stores (microseconds from the event to raised, acknowledged, outcome)
are exactly the differences of its times, whether written by a flush or by the backfill of
alerts stored before the columns existed."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tagwatch.access.service import principal_for
from tagwatch.alerts import service
from tagwatch.alerts.models import DELAY_STEPS, Alert, Outcome
from tagwatch.settings import Settings

SETTINGS = Settings(notifiers="outbox", outcome_deadline_hours=24)
# The night UK clocks go forward: delays are between UTC times, so the hour lost is no matter.
EVENT = dt.datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=dt.UTC)
_subjects = itertools.count(1)


def _delays(alert: Alert) -> dict[str, int | None]:
    return {column: getattr(alert, column) for column in DELAY_STEPS}


def test_the_service_stores_each_delay_as_it_happens(
    db: Session,
    make_case: Callable[..., Any],
    make_violation: Callable[..., Any],
    make_user: Callable[..., Any],
) -> None:
    user = make_user("d.officer", "probation_practitioner")
    case = make_case(officer="d.officer")
    violation = make_violation(case, start=EVENT)
    raised_at = EVENT + dt.timedelta(seconds=61, microseconds=500_001)
    [alert] = service.sync_violations(
        db, [violation.id], evaluated_at=raised_at, settings=SETTINGS, now=raised_at
    )
    db.flush()
    assert _delays(alert) == {
        "event_to_raised_us": 61_500_001,
        "event_to_acknowledged_us": None,
        "event_to_outcome_us": None,
    }
    officer = principal_for(user)
    service.acknowledge(db, officer, alert.id, EVENT + dt.timedelta(minutes=20))
    db.flush()
    assert alert.event_to_acknowledged_us == 20 * 60 * 1_000_000
    service.record_outcome(
        db, officer, alert.id, Outcome.WARNING, "seen", EVENT + dt.timedelta(days=40)
    )
    db.flush()
    db.expire(alert)
    assert alert.event_to_outcome_us == 40 * 86400 * 1_000_000
    assert alert.event_to_raised_us == 61_500_001


def _stored_alert(db: Session, event_at: dt.datetime, steps: list[dt.timedelta | None]) -> Alert:
    raised, acknowledged, outcome = (None if s is None else event_at + s for s in steps)
    alert = Alert(
        kind="violation",
        subject_key=f"violation:delays-{next(_subjects)}",
        violation_type="curfew.absence.gps",
        severity="high",
        summary="s",
        event_at=event_at,
        received_at=event_at,
        evaluated_at=event_at,
        raised_at=raised,
        acknowledged_at=acknowledged,
        outcome_at=outcome,
        outcome_due_at=event_at + dt.timedelta(days=1),
    )
    db.add(alert)
    db.flush()
    return alert


# Hypothesis takes naive bounds and attaches the time zone itself.
EARLIEST, LATEST = dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31)  # noqa: DTZ001
moments = st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=st.just(dt.UTC))
spans = st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=400))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    event_at=moments,
    raised=spans,
    acknowledged=st.none() | spans,
    outcome=st.none() | spans,
)
def test_the_backfill_fills_exactly_what_a_flush_would(
    db: Session,
    event_at: dt.datetime,
    raised: dt.timedelta,
    acknowledged: dt.timedelta | None,
    outcome: dt.timedelta | None,
) -> None:
    alert = _stored_alert(db, event_at, [raised, acknowledged, outcome])
    flushed = _delays(alert)
    assert flushed["event_to_raised_us"] == raised // dt.timedelta(microseconds=1)
    # As stored before the columns existed: the times, no delays.
    db.execute(update(Alert).where(Alert.id == alert.id).values(dict.fromkeys(DELAY_STEPS)))
    assert service.backfill_delays(db.connection()) == 1
    db.expire(alert)
    assert _delays(alert) == flushed
    assert service.backfill_delays(db.connection()) == 0  # once filled, never again
    db.delete(alert)
    db.flush()


def test_the_backfill_leaves_steps_not_yet_taken_empty(db: Session) -> None:
    alert = _stored_alert(db, EVENT, [dt.timedelta(seconds=5), None, None])
    db.execute(update(Alert).values(dict.fromkeys(DELAY_STEPS)))
    service.backfill_delays(db.connection())
    row = db.execute(select(*(getattr(Alert, c) for c in DELAY_STEPS)).where(Alert.id == alert.id))
    assert tuple(row.one()) == (5_000_000, None, None)
