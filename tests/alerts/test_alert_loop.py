"""The enforcement loop: raise once, escalate on time, gate tamper outcomes, chase deadlines."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.access.service import principal_for
from tagwatch.alerts import service
from tagwatch.alerts.models import (
    Alert,
    AlertHistory,
    AlertKind,
    AlertStatus,
    OutboxMessage,
    Outcome,
    TamperFinding,
)
from tagwatch.compliance.events import ViolationsChanged
from tagwatch.db.base import utcnow
from tagwatch.events import publish
from tagwatch.settings import Settings
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import DeviceEvent, GpsFix

SETTINGS = Settings(notifiers="outbox", escalation_minutes=30, outcome_deadline_hours=24)


def _alerts(db: Session) -> list[Alert]:
    return list(db.scalars(select(Alert).order_by(Alert.id)))


def _outbox(db: Session, recipient: str) -> list[OutboxMessage]:
    return list(db.scalars(select(OutboxMessage).where(OutboxMessage.recipient == recipient)))


def _changed(opened=(), updated=(), closed=(), at: dt.datetime | None = None) -> ViolationsChanged:
    return ViolationsChanged(list(opened), list(updated), list(closed), at or utcnow())


def _raise(db: Session, violation_id: int, now: dt.datetime | None = None) -> Alert:
    [alert] = service.sync_violations(
        db, [violation_id], evaluated_at=utcnow(), settings=SETTINGS, now=now or utcnow()
    )
    return alert


# ---------------------------------------------------------------- raised once, never for possible


def test_confirmed_violation_raises_one_alert_to_the_officer(
    db: Session, make_case, make_violation, make_user
) -> None:
    make_user("a.officer", "probation_practitioner")
    case = make_case(officer="a.officer")
    violation = make_violation(case)

    publish(db, _changed(opened=[violation.id]))
    publish(db, _changed(updated=[violation.id]))
    publish(db, _changed(opened=[violation.id], updated=[violation.id]))

    [alert] = _alerts(db)
    assert alert.kind == AlertKind.VIOLATION
    assert alert.violation_id == violation.id
    assert alert.order_id == case.order.id and alert.allocation_id == case.allocation.id
    assert alert.responsible_officer == "a.officer"
    assert alert.delivery_unit_code == "N07-LDN"
    assert alert.status == AlertStatus.OPEN
    assert alert.notified_at is not None
    [message] = _outbox(db, "a.officer")
    assert message.alert_id == alert.id
    assert "Absent during curfew" in message.subject
    assert f"alert {alert.id}" in message.subject


def test_possible_violation_never_alerts_until_confirmed(
    db: Session, make_case, make_violation
) -> None:
    case = make_case()
    violation = make_violation(case, status="possible")

    publish(db, _changed(opened=[violation.id]))
    publish(db, _changed(updated=[violation.id]))
    assert _alerts(db) == []
    assert _outbox(db, "a.officer") == []

    violation.status = "confirmed"
    db.flush()
    publish(db, _changed(updated=[violation.id]))
    [alert] = _alerts(db)
    assert alert.violation_id == violation.id


def test_withdrawn_possible_violation_raises_nothing(
    db: Session, make_case, make_violation
) -> None:
    violation = make_violation(make_case(), status="possible")
    violation.withdrawn_at = utcnow()
    db.flush()
    publish(db, _changed(closed=[violation.id]))
    assert _alerts(db) == []


def test_ended_withdrawn_and_found_again_update_the_same_alert(
    db: Session, make_case, make_violation
) -> None:
    violation = make_violation(make_case())
    publish(db, _changed(opened=[violation.id]))

    violation.end = violation.start + dt.timedelta(minutes=40)
    db.flush()
    publish(db, _changed(updated=[violation.id]))
    [alert] = _alerts(db)
    assert alert.violation_ended_at == violation.end

    violation.withdrawn_at = utcnow()
    db.flush()
    publish(db, _changed(closed=[violation.id]))
    db.refresh(alert)
    assert alert.status == AlertStatus.WITHDRAWN

    violation.withdrawn_at = None
    db.flush()
    publish(db, _changed(opened=[violation.id]))
    [same] = _alerts(db)
    assert same.id == alert.id and same.status == AlertStatus.OPEN
    actions = [h.action for h in same.history]
    assert actions == ["raised", "notified", "violation_ended", "withdrawn", "reinstated"]
    assert len(_outbox(db, "a.officer")) == 1


# ---------------------------------------------------------------- latency timestamps


def test_latency_timestamps_are_measured_and_ordered(
    db: Session, make_case, make_violation, make_user
) -> None:
    make_user("a.officer", "probation_practitioner")
    case = make_case()
    now = utcnow().replace(microsecond=0)  # records keep milliseconds
    start = now - dt.timedelta(minutes=20)
    fixes = [
        GpsFix(
            dedupe_key=f"alert-test|{i}",
            device_serial="GPS-X",
            allocation_id=case.allocation.id,
            t_ms=to_ms(start + dt.timedelta(minutes=i)),
            received_ms=to_ms(start + dt.timedelta(minutes=i + 5)),
            lat=51.5,
            lon=-0.1,
            accuracy_m=5.0,
            source="gnss",
        )
        for i in range(3)
    ]
    event = DeviceEvent(
        dedupe_key="alert-test|status",
        device_serial="GPS-X",
        allocation_id=case.allocation.id,
        type="status",
        t_ms=to_ms(start),
        received_ms=to_ms(start + dt.timedelta(minutes=9)),
        payload={"strap": "open"},
    )
    db.add_all([*fixes, event])
    db.flush()
    violation = make_violation(case, start=start, fixes=[f.id for f in fixes], events=[event.id])
    evaluated = start + dt.timedelta(minutes=9, seconds=2)

    [alert] = service.sync_violations(
        db, [violation.id], evaluated_at=evaluated, settings=SETTINGS, now=now
    )
    acknowledged = service.acknowledge(
        db, principal_for(_user(db, "a.officer")), alert.id, now + dt.timedelta(minutes=3)
    )

    # The latest evidence record to arrive is the status event, 9 minutes after the start.
    assert alert.received_at == start + dt.timedelta(minutes=9)
    assert alert.event_at == start
    assert alert.evaluated_at == evaluated
    assert alert.raised_at == now and alert.notified_at == now
    times = [
        alert.event_at,
        alert.received_at,
        alert.evaluated_at,
        alert.raised_at,
        alert.notified_at,
        acknowledged.acknowledged_at,
    ]
    assert times == sorted(times)
    figures = service.latency(db, since=now - dt.timedelta(seconds=1))
    assert figures["event_to_received"].count == 1
    assert figures["event_to_received"].p50_seconds == 9 * 60
    assert figures["received_to_evaluated"].p95_seconds == 2
    assert figures["notified_to_acknowledged"].p50_seconds == 180


def test_clock_found_violation_takes_evaluation_as_received(
    db: Session, make_case, make_violation
) -> None:
    violation = make_violation(make_case(), rule_id="device.loss_of_communication")
    evaluated = utcnow() - dt.timedelta(seconds=5)
    [alert] = service.sync_violations(
        db, [violation.id], evaluated_at=evaluated, settings=SETTINGS, now=utcnow()
    )
    assert alert.received_at == evaluated


def _percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (a spreadsheet's PERCENTILE.INC)."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    low = int(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def test_latency_percentiles_over_many_alerts(db: Session, make_case, make_violation) -> None:
    case = make_case()
    base = utcnow()
    gaps = [float(g) for g in (7, 1, 30, 2, 2, 45, 9, 3, 120, 4, 5, 11, 6, 8, 60, 10, 1, 15)]
    for n, gap in enumerate(gaps):  # seconds from evaluation to raising
        violation = make_violation(case, start=base - dt.timedelta(hours=1, minutes=n))
        service.sync_violations(
            db,
            [violation.id],
            evaluated_at=base,
            settings=SETTINGS,
            now=base + dt.timedelta(seconds=gap),
        )
    figures = service.latency(db, since=base)
    stage = figures["evaluated_to_raised"]
    assert stage.count == len(gaps)
    assert stage.p50_seconds == pytest.approx(_percentile(gaps, 0.50))
    assert stage.p95_seconds == pytest.approx(_percentile(gaps, 0.95))
    assert figures["notified_to_acknowledged"].count == 0
    assert service.latency(db, since=base + dt.timedelta(days=1))["evaluated_to_raised"].count == 0


# ---------------------------------------------------------------- escalation


def test_unacknowledged_alert_escalates_to_the_units_managers_once(
    db: Session, make_case, make_violation, make_user
) -> None:
    make_user("a.officer", "probation_practitioner")
    make_user("m.manager", "probation_manager", unit="N07-LDN")
    make_user("other.manager", "probation_manager", unit="N99-ELSE")
    raised = utcnow()
    alert = _raise(db, make_violation(make_case()).id, now=raised)

    at_29 = raised + dt.timedelta(minutes=29)
    assert service.escalate_due(db, settings=SETTINGS, now=at_29) == 0
    assert alert.escalated_at is None

    at_30 = raised + dt.timedelta(minutes=30)
    assert service.escalate_due(db, settings=SETTINGS, now=at_30) == 1
    assert alert.escalated_at == at_30
    assert alert.escalated_to == ["m.manager"]
    [message] = _outbox(db, "m.manager")
    assert message.subject.startswith(f"Escalated: alert {alert.id}")
    assert _outbox(db, "other.manager") == []

    later = raised + dt.timedelta(hours=3)
    assert service.escalate_due(db, settings=SETTINGS, now=later) == 0
    assert len(_outbox(db, "m.manager")) == 1
    assert [a.id for a in service.escalated(db, None)] == [alert.id]


def test_escalation_time_is_configurable_and_acknowledged_alerts_do_not_escalate(
    db: Session, make_case, make_violation, make_user
) -> None:
    officer = make_user("a.officer", "probation_practitioner")
    make_user("m.manager", "probation_manager")
    raised = utcnow()
    quick = Settings(notifiers="outbox", escalation_minutes=5)
    first = _raise(db, make_violation(make_case()).id, now=raised)
    second = _raise(db, make_violation(make_case()).id, now=raised)
    service.acknowledge(db, principal_for(officer), second.id, raised + dt.timedelta(minutes=2))

    assert service.escalate_due(db, settings=quick, now=raised + dt.timedelta(minutes=6)) == 1
    assert first.escalated_at is not None
    assert second.escalated_at is None


def test_escalation_without_a_manager_is_recorded_not_lost(
    db: Session, make_case, make_violation
) -> None:
    raised = utcnow()
    alert = _raise(db, make_violation(make_case(unit="N00-EMPTY")).id, now=raised)
    service.escalate_due(db, settings=SETTINGS, now=raised + dt.timedelta(hours=1))
    assert alert.escalated_at is not None and alert.escalated_to == []
    [entry] = [h for h in alert.history if h.action == "escalated"]
    assert "no probation manager" in entry.detail["problem"]


# ---------------------------------------------------------------- acknowledgement and outcomes


def _user(db: Session, username: str):
    from tagwatch.access.repository import user_by_username

    user = user_by_username(db, username)
    assert user is not None
    return user


def test_outcome_needs_acknowledgement_and_a_note_and_is_recorded_once(
    db: Session, make_case, make_violation, make_user
) -> None:
    officer = principal_for(make_user("a.officer", "probation_practitioner"))
    alert = _raise(db, make_violation(make_case()).id)
    now = utcnow()

    with pytest.raises(service.AlertStateError, match="acknowledge"):
        service.record_outcome(db, officer, alert.id, Outcome.WARNING, "late home", now)
    service.acknowledge(db, officer, alert.id, now)
    with pytest.raises(service.AlertStateError, match="not open"):
        service.acknowledge(db, officer, alert.id, now)
    with pytest.raises(ValueError, match="note"):
        service.record_outcome(db, officer, alert.id, Outcome.WARNING, "  ", now)

    service.record_outcome(db, officer, alert.id, Outcome.WARNING, "Late from work; warned", now)
    assert alert.status == AlertStatus.RESOLVED
    assert (alert.outcome, alert.outcome_by, alert.outcome_at) == ("warning", "a.officer", now)
    with pytest.raises(service.AlertStateError, match="resolved"):
        service.record_outcome(db, officer, alert.id, Outcome.RECALL, "again", now)


@pytest.mark.parametrize(
    ("finding", "enforcement_allowed"),
    [
        (None, False),
        (TamperFinding.DEVICE_FAULT, False),
        (TamperFinding.INCONCLUSIVE, False),
        (TamperFinding.CONFIRMED_TAMPER, True),
    ],
)
@pytest.mark.parametrize("outcome", [Outcome.WARNING, Outcome.BREACH_PROCEEDINGS, Outcome.RECALL])
def test_tamper_enforcement_needs_a_review_that_confirms_the_tamper(
    db: Session,
    make_case,
    make_violation,
    make_user,
    finding: TamperFinding | None,
    enforcement_allowed: bool,
    outcome: Outcome,
) -> None:
    officer = principal_for(make_user("a.officer", "probation_practitioner"))
    reviewer = principal_for(make_user("m.manager", "probation_manager"))
    alert = _raise(db, make_violation(make_case(), rule_id="tamper.strap").id)
    assert alert.needs_tamper_review
    now = utcnow()
    service.acknowledge(db, officer, alert.id, now)
    if finding is not None:
        service.review_tamper(db, reviewer, alert.id, finding, "checked the strap batch", now)

    if enforcement_allowed:
        service.record_outcome(db, officer, alert.id, outcome, "cut strap seen at visit", now)
        assert alert.outcome == outcome
    else:
        with pytest.raises(service.AlertStateError, match="no_action"):
            service.record_outcome(db, officer, alert.id, outcome, "strap open", now)
        assert alert.outcome is None
        service.record_outcome(db, officer, alert.id, Outcome.NO_ACTION, "device fault", now)
        assert alert.status == AlertStatus.RESOLVED


def test_tamper_review_is_only_for_tamper_alerts_and_only_once(
    db: Session, make_case, make_violation, make_user
) -> None:
    reviewer = principal_for(make_user("m.manager", "probation_manager"))
    curfew = _raise(db, make_violation(make_case()).id)
    tamper = _raise(db, make_violation(make_case(), rule_id="tamper.case").id)
    now = utcnow()
    with pytest.raises(service.AlertStateError, match="not a tamper alert"):
        service.review_tamper(db, reviewer, curfew.id, TamperFinding.DEVICE_FAULT, "x", now)
    service.review_tamper(db, reviewer, tamper.id, TamperFinding.DEVICE_FAULT, "batch 7", now)
    assert (tamper.tamper_finding, tamper.tamper_reviewed_by) == ("device_fault", "m.manager")
    with pytest.raises(service.AlertStateError, match="already reviewed"):
        service.review_tamper(db, reviewer, tamper.id, TamperFinding.CONFIRMED_TAMPER, "y", now)


def test_every_change_is_in_the_history_and_the_audit_log(
    db: Session, make_case, make_violation, make_user
) -> None:
    officer = principal_for(make_user("a.officer", "probation_practitioner"))
    alert = _raise(db, make_violation(make_case()).id)
    now = utcnow()
    service.acknowledge(db, officer, alert.id, now)
    service.record_outcome(db, officer, alert.id, Outcome.NO_ACTION, "hospital visit", now)

    history = db.scalars(
        select(AlertHistory).where(AlertHistory.alert_id == alert.id).order_by(AlertHistory.id)
    ).all()
    assert [(h.action, h.actor) for h in history] == [
        ("raised", "system"),
        ("notified", "system"),
        ("acknowledged", "a.officer"),
        ("outcome_recorded", "a.officer"),
    ]
    audited = db.scalars(
        select(AuditEntry)
        .where(AuditEntry.subject_type == "alert", AuditEntry.subject_id == str(alert.id))
        .order_by(AuditEntry.id)
    ).all()
    assert [(e.action, e.username) for e in audited] == [
        ("alert.raised", "system"),
        ("alert.notified", "system"),
        ("alert.acknowledged", "a.officer"),
        ("alert.outcome_recorded", "a.officer"),
    ]
    assert audited[-1].detail == {"outcome": "no_action", "note": "hospital visit"}


# ---------------------------------------------------------------- fitting deadlines and overdue


def test_order_past_its_fitting_deadline_alerts_once(db: Session, make_case) -> None:
    now = utcnow()
    late = make_case(status="awaiting_fitting", fitting_deadline=now - dt.timedelta(hours=2))
    make_case(status="awaiting_fitting", fitting_deadline=now + dt.timedelta(hours=2))
    make_case(status="active", fitting_deadline=now - dt.timedelta(days=3))

    [alert] = service.raise_fitting_overdue(db, settings=SETTINGS, now=now)
    assert alert.kind == AlertKind.AWAITING_FITTING
    assert alert.order_id == late.order.id
    assert alert.event_at == late.order.fitting_deadline
    assert alert.responsible_officer == "a.officer"
    assert late.order.ref in alert.summary
    assert len(_outbox(db, "a.officer")) == 1

    assert service.raise_fitting_overdue(db, settings=SETTINGS, now=now) == []
    assert service.raise_fitting_overdue(db, settings=SETTINGS, now=now + dt.timedelta(days=1))
    assert len(_alerts(db)) == 2


def test_overdue_report_lists_alerts_without_an_outcome_past_their_deadline(
    db: Session, make_case, make_violation, make_user
) -> None:
    officer = principal_for(make_user("a.officer", "probation_practitioner"))
    raised = utcnow()
    waiting = _raise(db, make_violation(make_case()).id, now=raised)
    acknowledged_only = _raise(db, make_violation(make_case()).id, now=raised)
    resolved = _raise(db, make_violation(make_case()).id, now=raised)
    service.acknowledge(db, officer, acknowledged_only.id, raised)
    service.acknowledge(db, officer, resolved.id, raised)
    service.record_outcome(db, officer, resolved.id, Outcome.WARNING, "warned", raised)
    assert waiting.outcome_due_at == raised + dt.timedelta(hours=24)

    assert service.overdue(db, None, raised + dt.timedelta(hours=23)) == []
    overdue = service.overdue(db, None, raised + dt.timedelta(hours=25))
    assert sorted(a.id for a in overdue) == sorted([waiting.id, acknowledged_only.id])


# ---------------------------------------------------------------- the periodic tasks


def test_periodic_tasks_read_their_settings_and_use_the_given_clock(
    db: Session, make_case, make_violation, make_user, settings: Settings
) -> None:
    from tagwatch.alerts import periodic

    db.info["settings"] = settings.model_copy(update={"escalation_minutes": 10})
    make_user("m.manager", "probation_manager")
    raised = utcnow()
    alert = _raise(db, make_violation(make_case()).id, now=raised)
    late = make_case(status="awaiting_fitting", fitting_deadline=raised + dt.timedelta(minutes=5))

    assert {task.name for task in periodic.TASKS} == {
        "alerts.deliver",
        "alerts.escalate",
        "alerts.awaiting_fitting",
    }
    assert periodic.escalate(db, raised + dt.timedelta(minutes=9)) == 0
    assert periodic.awaiting_fitting(db, raised + dt.timedelta(minutes=4)) == 0
    assert periodic.escalate(db, raised + dt.timedelta(minutes=11)) == 1
    assert alert.escalated_to == ["m.manager"]
    assert periodic.awaiting_fitting(db, raised + dt.timedelta(minutes=6)) == 1
    [fitting] = [a for a in _alerts(db) if a.kind == AlertKind.AWAITING_FITTING]
    assert fitting.order_id == late.order.id
    assert periodic.deliver(db, raised) == service.DeliveryRun()
