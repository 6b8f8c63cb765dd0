"""Invariants over any sequence of evaluations and actions, checked with hypothesis."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tagwatch.access.service import principal_for
from tagwatch.alerts import service
from tagwatch.alerts.models import Alert, AlertNotification, AlertStatus, Outcome, TamperFinding
from tagwatch.compliance.events import ViolationsChanged
from tagwatch.db.base import utcnow
from tagwatch.events import publish
from tagwatch.settings import Settings

SLOTS = 3
# One evaluation step: which violation, what compliance now says of it, and which list of the
# event names it in (compliance may name a violation in any of them, any number of times).
steps = st.lists(
    st.tuples(
        st.integers(0, SLOTS - 1),
        st.sampled_from(["possible", "confirmed"]),
        st.booleans(),  # withdrawn
        st.sampled_from(["opened", "updated", "closed"]),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=steps)
def test_one_alert_per_violation_ever_confirmed(
    db: Session, make_case, make_violation, steps
) -> None:
    savepoint = db.begin_nested()
    try:
        case = make_case()
        violations = [
            make_violation(case, status="possible", start=utcnow() - dt.timedelta(hours=n + 1))
            for n in range(SLOTS)
        ]
        ever_alerted: set[int] = set()
        for slot, status, withdrawn, listed in steps:
            violation = violations[slot]
            violation.status = status
            violation.withdrawn_at = utcnow() if withdrawn else None
            db.flush()
            publish(db, ViolationsChanged(**_lists(listed, violation.id), evaluated_at=utcnow()))
            if status == "confirmed" and not withdrawn:
                ever_alerted.add(violation.id)

            alerts = db.scalars(select(Alert)).all()
            assert sorted(a.violation_id for a in alerts) == sorted(ever_alerted)
            for alert in alerts:
                v = next(v for v in violations if v.id == alert.violation_id)
                stands = v.withdrawn_at is None and v.status == "confirmed"
                assert (alert.status == AlertStatus.WITHDRAWN) == (not stands)
        # One notification per alert however often it was re-evaluated.
        sent = db.scalar(select(func.count()).select_from(AlertNotification))
        assert sent == len(ever_alerted)
    finally:
        savepoint.rollback()


def _lists(listed: str, violation_id: int) -> dict[str, list[int]]:
    lists: dict[str, list[int]] = {"opened": [], "updated": [], "closed": []}
    lists[listed].append(violation_id)
    return lists


actions = st.lists(
    st.one_of(
        st.just(("acknowledge",)),
        st.tuples(st.just("review"), st.sampled_from(list(TamperFinding))),
        st.tuples(st.just("outcome"), st.sampled_from(list(Outcome))),
    ),
    max_size=6,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(actions=actions, rule_id=st.sampled_from(["tamper.strap", "curfew.absence.gps"]))
def test_enforcement_on_a_tamper_only_ever_follows_a_confirmed_review(
    db: Session, make_case, make_violation, make_user, actions, rule_id: str
) -> None:
    savepoint = db.begin_nested()
    try:
        officer = principal_for(make_user("p.officer", "probation_practitioner"))
        reviewer = principal_for(make_user("p.manager", "probation_manager"))
        [alert] = service.sync_violations(
            db,
            [make_violation(make_case(officer="p.officer"), rule_id=rule_id).id],
            evaluated_at=utcnow(),
            settings=Settings(notifiers="outbox"),
            now=utcnow(),
        )
        for action in actions:
            try:
                if action[0] == "acknowledge":
                    service.acknowledge(db, officer, alert.id, utcnow())
                elif action[0] == "review":
                    service.review_tamper(db, reviewer, alert.id, action[1], "seen", utcnow())
                else:
                    service.record_outcome(db, officer, alert.id, action[1], "done", utcnow())
            except service.AlertStateError:
                pass
            # The invariants hold after every step, allowed or refused.
            if alert.outcome not in (None, Outcome.NO_ACTION) and alert.needs_tamper_review:
                assert alert.tamper_finding == TamperFinding.CONFIRMED_TAMPER
            if alert.outcome is not None:
                assert alert.acknowledged_at is not None
                assert alert.status == AlertStatus.RESOLVED
    finally:
        savepoint.rollback()
