"""All SQL for alerts, their history, notifications and the outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, TypeVarTuple, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Row,
    Select,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from tagwatch.access.models import User
from tagwatch.alerts.models import (
    Alert,
    AlertHistory,
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
# Values per IN list: well inside both backends' limits on bound parameters.
IN_CHUNK = 5000
T = TypeVar("T")
Ts = TypeVarTuple("Ts")
# The tables that batches write with Core statements.
ALERTS = cast(Table, Alert.__table__)
HISTORY = cast(Table, AlertHistory.__table__)
NOTIFICATIONS = cast(Table, AlertNotification.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)


@dataclass(frozen=True)
class AlertFilter:
    status: str | None = None
    kind: str | None = None
    escalated: bool | None = None
    person_id: int | None = None
    limit: int = 100
    offset: int = 0


def in_chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def among(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`. On PostgreSQL the values go as one array (`= ANY`): binding
    thousands of parameters one by one costs several times the CPU."""
    clause: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        clause = column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    else:
        clause = column.in_(values)
    return clause


def rows_among(
    session: Session, statement: Select[*Ts], column: Any, values: Iterable[Any]
) -> Iterator[Row[*Ts]]:
    """The rows of `statement` whose `column` is one of `values` (each once, in sorted chunks
    of `IN_CHUNK`)."""
    for chunk in in_chunks(sorted(set(values))):
        yield from session.execute(statement.where(among(session, column, chunk)))


# What alerts read of a violation (columns, not entities: a batch reads thousands). Its
# evidence is read only for the violations that raise an alert (`violation_evidence`).
VIOLATION_FACTS: tuple[Any, ...] = (
    Violation.id,
    Violation.status,
    Violation.withdrawn_at,
    Violation.severity,
    Violation.start,
    Violation.end,
    Violation.rule_id,
    Violation.needs_review,
    Violation.order_id,
    Violation.allocation_id,
    Violation.person_id,
)


def violation_facts(session: Session, ids: Iterable[int]) -> list[Row[Any]]:
    """The violations with these ids, by id (an ORM query: pending changes are flushed first)."""
    wanted = (int(i) for i in ids)
    rows = rows_among(session, select(*VIOLATION_FACTS), Violation.id, wanted)
    return sorted(rows, key=lambda row: row.id)


def violation_evidence(
    session: Session, ids: Sequence[int]
) -> list[tuple[int, list[int] | None, list[int] | None]]:
    """(id, evidence fixes, evidence events) of each of these violations."""
    columns = select(Violation.id, Violation.evidence_fixes, Violation.evidence_events)
    return [
        (violation_id, fixes, events)
        for violation_id, fixes, events in rows_among(session, columns, Violation.id, ids)
    ]


# What following a violation reads of its alert, and the columns it may change.
ALERT_STATE: tuple[Any, ...] = (
    Alert.id,
    Alert.subject_key,
    Alert.status,
    Alert.severity,
    Alert.violation_ended_at,
    Alert.violation_withdrawn_at,
    Alert.acknowledged_at,
)
FOLLOWED = ("status", "severity", "violation_ended_at", "violation_withdrawn_at")


def alert_states(session: Session, subject_keys: Iterable[str]) -> dict[str, Row[Any]]:
    """The stored alerts of these subjects, by subject key."""
    rows = rows_among(session, select(*ALERT_STATE), Alert.subject_key, subject_keys)
    return {row.subject_key: row for row in rows}


def insert_alerts(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert alerts (every row with the same keys); their ids by subject key."""
    found = _insert_and_find(session, ALERTS, rows, ("subject_key",), "subject_key")
    return {subject_key: alert_id for (subject_key,), alert_id in found.items()}


def update_alerts(session: Session, changes: list[dict[str, Any]]) -> None:
    """Write each alert's `FOLLOWED` columns (`alert_id` names it), in one executemany; the
    session's copies of those alerts are expired so they read the stored row again."""
    if not changes:
        return
    table = ALERTS
    session.execute(update(table).where(table.c.id == bindparam("alert_id")), changes)
    for change in changes:
        held = session.identity_map.get(identity_key(Alert, change["alert_id"]))
        if held is not None:
            session.expire(held)


def insert_history(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(HISTORY), rows)


NotificationKey = tuple[int, str, str, str]  # alert, purpose, channel, recipient: unique


def insert_notifications(
    session: Session, rows: list[dict[str, Any]]
) -> dict[NotificationKey, int]:
    key = ("alert_id", "purpose", "channel", "recipient")
    return _insert_and_find(session, NOTIFICATIONS, rows, key, "alert_id")


def insert_outbox(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert in-app messages; their ids by reference."""
    found = _insert_and_find(session, OUTBOX, rows, ("reference",), "reference")
    return {reference: message_id for (reference,), message_id in found.items()}


def _insert_and_find(
    session: Session, table: Table, rows: list[dict[str, Any]], key: tuple[str, ...], by: str
) -> dict[tuple[Any, ...], int]:
    """Insert rows in one executemany, then read their ids back by `key` (unique), looking
    them up by the column `by`. On PostgreSQL a batched INSERT ... RETURNING costs several
    times the CPU of this pair of statements; on SQLite they cost the same."""
    if not rows:
        return {}
    session.execute(insert(table), rows)
    wanted = {tuple(row[name] for name in key) for row in rows}
    columns = select(table.c.id, *(table.c[name] for name in key))
    ids: dict[tuple[Any, ...], int] = {}
    for found_id, *found_key in rows_among(session, columns, table.c[by], (r[by] for r in rows)):
        if (found := tuple(found_key)) in wanted:
            ids[found] = found_id
    return ids


def set_provider_references(session: Session, references: dict[int, str]) -> None:
    """Record each notification's provider reference (by notification id)."""
    if not references:
        return
    table = NOTIFICATIONS
    session.execute(
        update(table)
        .where(table.c.id == bindparam("notification_id"))
        .values(provider_reference=bindparam("reference")),
        [{"notification_id": i, "reference": ref} for i, ref in references.items()],
    )


def emails_of(session: Session, usernames: Iterable[str]) -> dict[str, str | None]:
    """The email of each of these users that exists (users without one map to None)."""
    rows = rows_among(session, select(User.username, User.email), User.username, usernames)
    return {username: email for username, email in rows}


def alerts_by_id(session: Session, ids: Sequence[int]) -> list[Alert]:
    """These alerts, in the order of `ids`."""
    found = {alert.id: alert for (alert,) in rows_among(session, select(Alert), Alert.id, ids)}
    return [found[i] for i in ids]


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


def person_alert_history(
    session: Session, scope: ColumnElement[bool], person_id: int, limit: int
) -> Sequence[Any]:
    """A person's latest alerts in scope, newest first, as plain rows of what a timeline shows
    (no count of them all, and no objects: a page that only lists them)."""
    statement = (
        select(
            Alert.id,
            Alert.raised_at,
            Alert.summary,
            Alert.acknowledged_at,
            Alert.acknowledged_by,
            Alert.escalated_at,
            Alert.outcome_at,
            Alert.outcome,
            Alert.outcome_by,
            Alert.outcome_note,
        )
        .where(scope, Alert.person_id == person_id)
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
        .limit(limit)
    )
    return session.connection().execute(statement).all()


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
