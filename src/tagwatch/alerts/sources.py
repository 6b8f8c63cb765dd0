"""What an alert is raised about, read from the domains above: violations and late fittings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from tagwatch.alerts.models import AlertKind
from tagwatch.cases.models import Order
from tagwatch.compliance.models import Violation
from tagwatch.compliance.rules import RULES
from tagwatch.telemetry.epoch import from_ms
from tagwatch.telemetry.models import DeviceEvent, GpsFix

CONFIRMED = "confirmed"
AWAITING_FITTING = "awaiting_fitting"


@dataclass(frozen=True)
class AlertSource:
    kind: AlertKind
    subject_key: str
    violation_type: str
    severity: str
    summary: str
    needs_tamper_review: bool
    event_at: dt.datetime
    received_at: dt.datetime
    evaluated_at: dt.datetime
    ended_at: dt.datetime | None = None
    violation_id: int | None = None
    order_id: int | None = None
    allocation_id: int | None = None
    person_id: int | None = None
    responsible_officer: str | None = None
    delivery_unit_code: str | None = None


@dataclass(frozen=True)
class OrderFacts:
    responsible_officer: str | None
    delivery_unit_code: str | None


def violation_subject(violation_id: int) -> str:
    return f"violation:{violation_id}"


def fitting_subject(order_id: int) -> str:
    return f"{AWAITING_FITTING}:{order_id}"


def alerts_on(violation: Violation) -> bool:
    """Only a confirmed violation that still stands raises an alert; a possible one never."""
    return violation.status == CONFIRMED and violation.withdrawn_at is None


def from_violation(
    session: Session, violation: Violation, evaluated_at: dt.datetime
) -> AlertSource:
    order = order_facts(session, violation.order_id)
    rule = RULES.get(violation.rule_id)
    return AlertSource(
        kind=AlertKind.VIOLATION,
        subject_key=violation_subject(violation.id),
        violation_type=violation.rule_id,
        severity=violation.severity,
        summary=rule.title if rule else violation.rule_id,
        needs_tamper_review=violation.needs_review,
        event_at=violation.start,
        received_at=evidence_received_at(session, violation) or evaluated_at,
        evaluated_at=evaluated_at,
        ended_at=violation.end,
        violation_id=violation.id,
        order_id=violation.order_id,
        allocation_id=violation.allocation_id,
        person_id=violation.person_id,
        responsible_officer=order.responsible_officer,
        delivery_unit_code=order.delivery_unit_code,
    )


def evidence_received_at(session: Session, violation: Violation) -> dt.datetime | None:
    """When the latest of the violation's evidence records reached the server.

    A violation the clock found (no record arrived: loss of communication, no presence at
    curfew) has no such time; its trigger is the evaluation itself.
    """
    fix_ids = [int(i) for i in (violation.evidence_fixes or [])]
    event_ids = [int(i) for i in (violation.evidence_events or [])]
    parts = []
    if fix_ids:
        parts.append(select(GpsFix.received_ms.label("received_ms")).where(GpsFix.id.in_(fix_ids)))
    if event_ids:
        parts.append(
            select(DeviceEvent.received_ms.label("received_ms")).where(
                DeviceEvent.id.in_(event_ids)
            )
        )
    if not parts:
        return None
    both = union_all(*parts).subquery()
    latest = session.scalar(select(func.max(both.c.received_ms)))
    return None if latest is None else from_ms(int(latest))


def from_order_past_fitting(order: Order, now: dt.datetime) -> AlertSource:
    deadline = order.fitting_deadline or now
    return AlertSource(
        kind=AlertKind.AWAITING_FITTING,
        subject_key=fitting_subject(order.id),
        violation_type=AWAITING_FITTING,
        severity="high",
        summary=f"Order {order.ref} is still awaiting fitting after its fitting deadline",
        needs_tamper_review=False,
        event_at=deadline,
        # No record triggers it: the deadline passing is the event, the clock the receiver.
        received_at=deadline,
        evaluated_at=now,
        order_id=order.id,
        person_id=order.person_id,
        responsible_officer=order.responsible_officer,
        delivery_unit_code=order.delivery_unit_code,
    )


def order_facts(session: Session, order_id: int | None) -> OrderFacts:
    order = session.get(Order, order_id) if order_id is not None else None
    if order is None:
        return OrderFacts(None, None)
    return OrderFacts(order.responsible_officer, order.delivery_unit_code)
