"""All SQL for alerts, their history, notifications and the outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, func, select, true
from sqlalchemy.orm import Session

from tagwatch.access.models import User
from tagwatch.alerts.models import (
    Alert,
    AlertKind,
    AlertNotification,
    AlertStatus,
    DeliveryStatus,
    OutboxMessage,
)
from tagwatch.cases.models import Order
from tagwatch.compliance.models import Violation

MANAGER_ROLE = "probation_manager"
AWAITING_FITTING = "awaiting_fitting"  # the order status
UNRESOLVED = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


@dataclass(frozen=True)
class AlertFilter:
    status: str | None = None
    kind: str | None = None
    escalated: bool | None = None
    person_id: int | None = None
    limit: int = 100
    offset: int = 0


def alert_by_subject(session: Session, subject_key: str) -> Alert | None:
    return session.scalar(select(Alert).where(Alert.subject_key == subject_key))


def violations_by_id(session: Session, ids: Iterable[int]) -> Sequence[Violation]:
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return []
    return session.scalars(
        select(Violation).where(Violation.id.in_(wanted)).order_by(Violation.id)
    ).all()


def alert_by_id(session: Session, alert_id: int, scope: ColumnElement[bool]) -> Alert | None:
    return session.scalar(select(Alert).where(Alert.id == alert_id, scope))


def list_alerts(
    session: Session, scope: ColumnElement[bool], query: AlertFilter
) -> tuple[int, Sequence[Alert]]:
    statement = select(Alert).where(scope)
    if query.status is not None:
        statement = statement.where(Alert.status == query.status)
    if query.kind is not None:
        statement = statement.where(Alert.kind == query.kind)
    if query.escalated is not None:
        statement = statement.where(
            Alert.escalated_at.is_not(None) if query.escalated else Alert.escalated_at.is_(None)
        )
    if query.person_id is not None:
        statement = statement.where(Alert.person_id == query.person_id)
    return _page(session, statement, query.limit, query.offset)


def overdue_alerts(
    session: Session, scope: ColumnElement[bool], now: dt.datetime
) -> Sequence[Alert]:
    """Alerts still without an outcome after their outcome deadline, oldest deadline first."""
    return session.scalars(
        select(Alert)
        .where(scope, Alert.status.in_(UNRESOLVED), Alert.outcome_due_at < now)
        .order_by(Alert.outcome_due_at, Alert.id)
    ).all()


def escalated_alerts(session: Session, scope: ColumnElement[bool]) -> Sequence[Alert]:
    """Escalated alerts that still need someone to act, longest escalated first."""
    return session.scalars(
        select(Alert)
        .where(scope, Alert.escalated_at.is_not(None), Alert.status.in_(UNRESOLVED))
        .order_by(Alert.escalated_at, Alert.id)
    ).all()


def outbox_message(session: Session, message_id: int, recipient: str) -> OutboxMessage | None:
    return session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.id == message_id, OutboxMessage.recipient == recipient
        )
    )


def alerts_to_escalate(session: Session, raised_before: dt.datetime) -> Sequence[Alert]:
    return session.scalars(
        select(Alert)
        .where(
            Alert.status == AlertStatus.OPEN,
            Alert.escalated_at.is_(None),
            Alert.raised_at <= raised_before,
        )
        .order_by(Alert.id)
        .with_for_update(skip_locked=True)
    ).all()


def due_notifications(
    session: Session, now: dt.datetime, limit: int
) -> Sequence[AlertNotification]:
    # SKIP LOCKED (PostgreSQL) lets two servers share the queue without sending twice.
    return session.scalars(
        select(AlertNotification)
        .where(
            AlertNotification.status == DeliveryStatus.PENDING,
            AlertNotification.next_attempt_at <= now,
        )
        .order_by(AlertNotification.next_attempt_at, AlertNotification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def orders_past_fitting_deadline(session: Session, now: dt.datetime) -> Sequence[Order]:
    """Orders awaiting fitting after their deadline that have no fitting alert yet."""
    already = select(Alert.id).where(
        Alert.kind == AlertKind.AWAITING_FITTING, Alert.order_id == Order.id
    )
    return session.scalars(
        select(Order)
        .where(
            Order.status == AWAITING_FITTING,
            Order.fitting_deadline.is_not(None),
            Order.fitting_deadline < now,
            ~already.exists(),
        )
        .order_by(Order.fitting_deadline, Order.id)
    ).all()


def managers_of(session: Session, delivery_unit_code: str) -> list[User]:
    """Active probation managers of a delivery unit (roles are a JSON list: filtered here)."""
    users = session.scalars(
        select(User)
        .where(User.delivery_unit_code == delivery_unit_code, User.active.is_(True))
        .order_by(User.username)
    ).all()
    return [user for user in users if MANAGER_ROLE in (user.roles or [])]


def outbox_for(
    session: Session, recipient: str, *, unread_only: bool = False, limit: int = 100
) -> Sequence[OutboxMessage]:
    statement = select(OutboxMessage).where(OutboxMessage.recipient == recipient)
    if unread_only:
        statement = statement.where(OutboxMessage.read_at.is_(None))
    return session.scalars(
        statement.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()).limit(limit)
    ).all()


TIMING_COLUMNS = (
    "event_at",
    "received_at",
    "evaluated_at",
    "raised_at",
    "notified_at",
    "acknowledged_at",
)


def alert_timings(
    session: Session, kind: str, since: dt.datetime | None, until: dt.datetime | None
) -> list[dict[str, dt.datetime | None]]:
    statement = select(*(getattr(Alert, name) for name in TIMING_COLUMNS)).where(Alert.kind == kind)
    if since is not None:
        statement = statement.where(Alert.raised_at >= since)
    if until is not None:
        statement = statement.where(Alert.raised_at < until)
    return [dict(row._mapping) for row in session.execute(statement)]


def _page(
    session: Session, statement: Select[Alert], limit: int, offset: int
) -> tuple[int, Sequence[Alert]]:
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(
        statement.order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit).offset(offset)
    ).all()
    return total, rows


EVERYTHING: ColumnElement[bool] = true()
