"""What an alert is raised about, read from the domains above: violations and late fittings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.alerts.models import AlertKind
from tagwatch.alerts.repository import rows_among, violation_evidence
from tagwatch.cases.models import Order
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


class ViolationFacts(Protocol):
    """What alerts read of a violation: a `Violation`, or a row of `repository.VIOLATION_FACTS`."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def withdrawn_at(self) -> dt.datetime | None: ...
    @property
    def severity(self) -> str: ...
    @property
    def start(self) -> dt.datetime: ...
    @property
    def end(self) -> dt.datetime | None: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def needs_review(self) -> bool: ...
    @property
    def order_id(self) -> int | None: ...
    @property
    def allocation_id(self) -> int: ...
    @property
    def person_id(self) -> int | None: ...


def violation_subject(violation_id: int) -> str:
    return f"violation:{violation_id}"


def fitting_subject(order_id: int) -> str:
    return f"{AWAITING_FITTING}:{order_id}"


def alerts_on(violation: ViolationFacts) -> bool:
    """Only a confirmed violation that still stands raises an alert; a possible one never."""
    return violation.status == CONFIRMED and violation.withdrawn_at is None


def from_violations(
    session: Session, violations: Sequence[ViolationFacts], evaluated_at: dt.datetime
) -> list[AlertSource]:
    """The alert source of each violation, reading their orders and evidence in one go."""
    orders = orders_facts(session, [v.order_id for v in violations if v.order_id is not None])
    received = evidence_received_times(session, [v.id for v in violations])
    unknown = OrderFacts(None, None)
    sources = []
    for violation in violations:
        order = orders.get(violation.order_id, unknown) if violation.order_id else unknown
        rule = RULES.get(violation.rule_id)
        sources.append(
            AlertSource(
                kind=AlertKind.VIOLATION,
                subject_key=violation_subject(violation.id),
                violation_type=violation.rule_id,
                severity=violation.severity,
                summary=rule.title if rule else violation.rule_id,
                needs_tamper_review=violation.needs_review,
                event_at=violation.start,
                received_at=received.get(violation.id) or evaluated_at,
                evaluated_at=evaluated_at,
                ended_at=violation.end,
                violation_id=violation.id,
                order_id=violation.order_id,
                allocation_id=violation.allocation_id,
                person_id=violation.person_id,
                responsible_officer=order.responsible_officer,
                delivery_unit_code=order.delivery_unit_code,
            )
        )
    return sources


def evidence_received_times(
    session: Session, violation_ids: Sequence[int]
) -> dict[int, dt.datetime]:
    """When the latest of each violation's evidence records reached the server, by violation
    id; the records of all of them are read at once.

    A violation the clock found (no record arrived: loss of communication, no presence at
    curfew) has no such time, and no entry here: its trigger is the evaluation itself.
    """
    evidence = [
        (violation_id, [int(i) for i in fixes or []], [int(i) for i in events or []])
        for violation_id, fixes, events in violation_evidence(session, violation_ids)
    ]
    fixes = _received_ms(session, GpsFix, {i for _, ids, _ in evidence for i in ids})
    events = _received_ms(session, DeviceEvent, {i for _, _, ids in evidence for i in ids})
    latest: dict[int, dt.datetime] = {}
    for violation_id, fix_ids, event_ids in evidence:
        times = [fixes[i] for i in fix_ids if i in fixes]
        times += [events[i] for i in event_ids if i in events]
        if times:
            latest[violation_id] = from_ms(max(times))
    return latest


def _received_ms(
    session: Session, record: type[GpsFix] | type[DeviceEvent], ids: set[int]
) -> dict[int, int]:
    rows = rows_among(session, select(record.id, record.received_ms), record.id, ids)
    return {int(i): int(ms) for i, ms in rows if ms is not None}


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


def orders_facts(session: Session, order_ids: Iterable[int]) -> dict[int, OrderFacts]:
    """Who answers for each of these orders, by order id (orders that exist)."""
    columns = select(Order.id, Order.responsible_officer, Order.delivery_unit_code)
    rows = rows_among(session, columns, Order.id, order_ids)
    return {order_id: OrderFacts(officer, unit) for order_id, officer, unit in rows}
