"""Alert use cases: raise, notify, escalate, acknowledge, review, record outcomes, report.

Nothing here commits. Notifications follow the transactional outbox pattern: raising an alert
writes its notifications in the same transaction as the violation that caused it; the in-app
outbox is delivered there and then, and the outside channels (Notify, SMTP, webhook) are sent
by the delivery task once that transaction is durable, so nobody is emailed about an alert
that was rolled back, and a failed send is retried, never lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    and_,
    cast,
    column,
    func,
    or_,
    table,
    update,
)
from sqlalchemy.orm import Session

from tagwatch.access.models import User
from tagwatch.access.principal import Principal
from tagwatch.alerts import notices, raising, repository, scope, sources
from tagwatch.alerts.journal import Journal, record_change
from tagwatch.alerts.messages import structured
from tagwatch.alerts.models import (
    DELAY_STEPS,
    Alert,
    AlertKind,
    AlertNotification,
    AlertStatus,
    DeliveryStatus,
    OutboxMessage,
    Outcome,
    TamperFinding,
)
from tagwatch.alerts.notifiers import Message, Notifier, build_notifier
from tagwatch.alerts.notifiers.base import DeliveryResult
from tagwatch.alerts.sources import AlertSource
from tagwatch.settings import Settings

log = structlog.get_logger()

RETRY_BASE = dt.timedelta(seconds=30)
RETRY_CAP = dt.timedelta(minutes=30)
DELIVERY_BATCH = 200


class AlertNotFound(LookupError):
    """No such alert, or not in the caller's scope (the two are not told apart)."""


class AlertStateError(Exception):
    """The change is not allowed in the alert's present state; the message says why."""


# ---------------------------------------------------------------- raising and updating
# Batched, in `raising`; these are the entry points other domains and tests call.

sync_violations = raising.sync_violations
follow_violations = raising.follow_violations
raise_alerts = raising.raise_alerts


def raise_alert(
    session: Session, source: AlertSource, *, settings: Settings, now: dt.datetime
) -> Alert:
    """The alert for `source`, raised and notified if it is new; never a second one."""
    [alert] = raising.raise_alerts(session, [source], settings=settings, now=now)
    return alert


def raise_fitting_overdue(session: Session, *, settings: Settings, now: dt.datetime) -> list[Alert]:
    """One alert per order still awaiting fitting after its fitting deadline."""
    orders = repository.orders_past_fitting_deadline(session, now)
    return raising.raise_alerts(
        session,
        [sources.from_order_past_fitting(order, now) for order in orders],
        settings=settings,
        now=now,
    )


# ---------------------------------------------------------------- escalation


def escalate_due(session: Session, *, settings: Settings, now: dt.datetime) -> int:
    """Escalate every alert not acknowledged within `escalation_minutes` to its managers."""
    cutoff = now - dt.timedelta(minutes=settings.escalation_minutes)
    journal = Journal()
    escalations: list[notices.Notice] = []
    managers_by_unit: dict[str, list[User]] = {}
    for alert in repository.alerts_to_escalate(session, cutoff):
        unit = alert.delivery_unit_code
        managers = []
        if unit:
            if unit not in managers_by_unit:
                managers_by_unit[unit] = repository.managers_of(session, unit)
            managers = managers_by_unit[unit]
        alert.escalated_at = now
        alert.escalated_to = [manager.username for manager in managers]
        detail: dict[str, object] = {"to": alert.escalated_to}
        if not managers:
            detail["problem"] = f"no probation manager in delivery unit {unit or '(none)'}"
        journal.add(alert, "escalated", now, detail)
        escalations.append(notices.Notice(alert, alert.id, "escalated", managers))
    notices.send(session, escalations, settings, now)
    journal.write(session)
    return len(escalations)


# ---------------------------------------------------------------- the officer's actions


def acknowledge(session: Session, principal: Principal, alert_id: int, now: dt.datetime) -> Alert:
    alert = get_alert(session, principal, alert_id)
    if alert.status != AlertStatus.OPEN:
        raise AlertStateError(
            f"alert {alert_id} is {alert.status}, not open: nothing to acknowledge"
        )
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by = principal.username
    record_change(session, alert, principal, "acknowledged", now, {})
    return alert


def review_tamper(
    session: Session,
    principal: Principal,
    alert_id: int,
    finding: TamperFinding,
    note: str,
    now: dt.datetime,
) -> Alert:
    """A human finding on a tamper alert; without `confirmed_tamper` enforcement is barred."""
    alert = get_alert(session, principal, alert_id)
    if not alert.needs_tamper_review:
        raise AlertStateError(f"alert {alert_id} is not a tamper alert: it needs no review")
    if alert.status in (AlertStatus.RESOLVED, AlertStatus.WITHDRAWN):
        raise AlertStateError(f"alert {alert_id} is {alert.status}: it can no longer be reviewed")
    if alert.tamper_finding is not None:
        raise AlertStateError(f"alert {alert_id} was already reviewed: {alert.tamper_finding}")
    note = _required_note(note)
    alert.tamper_finding = finding
    alert.tamper_review_note = note
    alert.tamper_reviewed_at = now
    alert.tamper_reviewed_by = principal.username
    record_change(
        session, alert, principal, "tamper_reviewed", now, {"finding": finding, "note": note}
    )
    return alert


def record_outcome(
    session: Session,
    principal: Principal,
    alert_id: int,
    outcome: Outcome,
    note: str,
    now: dt.datetime,
) -> Alert:
    alert = get_alert(session, principal, alert_id)
    if alert.status == AlertStatus.OPEN:
        raise AlertStateError(f"alert {alert_id}: acknowledge it before recording an outcome")
    if alert.status != AlertStatus.ACKNOWLEDGED:
        raise AlertStateError(f"alert {alert_id} is {alert.status}: no outcome can be recorded")
    if outcome != Outcome.NO_ACTION and alert.needs_tamper_review:
        if alert.tamper_finding is None:
            raise AlertStateError(
                f"outcome: {outcome} needs a tamper review first; only no_action is allowed"
            )
        if alert.tamper_finding != TamperFinding.CONFIRMED_TAMPER:
            raise AlertStateError(
                f"outcome: the review found {alert.tamper_finding}, so only no_action is allowed"
            )
    note = _required_note(note)
    alert.outcome = outcome
    alert.outcome_note = note
    alert.outcome_at = now
    alert.outcome_by = principal.username
    alert.status = AlertStatus.RESOLVED
    record_change(
        session, alert, principal, "outcome_recorded", now, {"outcome": outcome, "note": note}
    )
    return alert


# ---------------------------------------------------------------- reading and reports


def get_alert(session: Session, principal: Principal, alert_id: int) -> Alert:
    alert = repository.alert_by_id(session, alert_id, scope.visible_to(principal))
    if alert is None:
        raise AlertNotFound(f"alert {alert_id} not found")
    return alert


def list_alerts(
    session: Session, principal: Principal, query: repository.AlertFilter
) -> tuple[int, Sequence[Alert]]:
    return repository.list_alerts(session, scope.visible_to(principal), query)


def overdue(session: Session, principal: Principal | None, now: dt.datetime) -> Sequence[Alert]:
    """Alerts with no outcome past their outcome deadline (None: every alert, for the CLI)."""
    return repository.overdue_alerts(session, _scope_or_all(principal), now)


def escalated(session: Session, principal: Principal | None) -> Sequence[Alert]:
    return repository.escalated_alerts(session, _scope_or_all(principal))


def mark_read(
    session: Session, principal: Principal, message_id: int, now: dt.datetime
) -> OutboxMessage:
    """The caller has read one of their in-app messages (the first reading time is kept)."""
    message = repository.outbox_message(session, message_id, principal.username)
    if message is None:
        raise AlertNotFound(f"message {message_id} not found")
    if message.read_at is None:
        message.read_at = now
    return message


@dataclass(frozen=True)
class LatencyFigures:
    count: int
    p50_seconds: float | None
    p95_seconds: float | None


# Each stage is (from, to): the figures are measured between stored times, never estimated.
LATENCY_STAGES: dict[str, tuple[str, str]] = {
    "event_to_received": ("event_at", "received_at"),
    "received_to_evaluated": ("received_at", "evaluated_at"),
    "evaluated_to_raised": ("evaluated_at", "raised_at"),
    "raised_to_notified": ("raised_at", "notified_at"),
    "received_to_notified": ("received_at", "notified_at"),
    "event_to_notified": ("event_at", "notified_at"),
    "notified_to_acknowledged": ("notified_at", "acknowledged_at"),
}


def latency(
    session: Session,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    kind: AlertKind = AlertKind.VIOLATION,
) -> dict[str, LatencyFigures]:
    """p50 and p95 of each stage for alerts raised in [since, until)."""
    rows = repository.alert_timings(session, kind, since, until)
    figures: dict[str, LatencyFigures] = {}
    for stage, (start, end) in LATENCY_STAGES.items():
        seconds = [
            (finish - begin).total_seconds()
            for row in rows
            if (begin := row[start]) is not None and (finish := row[end]) is not None
        ]
        if not seconds:
            figures[stage] = LatencyFigures(0, None, None)
            continue
        p50, p95 = np.percentile(np.asarray(seconds), [50, 95])
        figures[stage] = LatencyFigures(len(seconds), float(p50), float(p95))
    return figures


# ---------------------------------------------------------------- stored delays


def _epoch_microseconds(dialect: str, stamp: ColumnElement[Any]) -> ColumnElement[int]:
    if dialect == "sqlite":
        # Stored as text "YYYY-MM-DD HH:MM:SS[.ffffff]": whole seconds from the first 19
        # characters (strftime would round the fraction), then the fraction padded to 6 digits.
        whole = cast(func.strftime("%s", func.substr(stamp, 1, 19)), BigInteger)
        fraction = cast(func.substr(func.substr(stamp, 21).concat("000000"), 1, 6), BigInteger)
        return whole * 1_000_000 + fraction
    return cast(func.extract("epoch", stamp) * 1_000_000, BigInteger)


def backfill_delays(connection: Connection) -> int:
    """Fill the stored delays (`DELAY_STEPS`) of alerts written before those columns existed,
    in one UPDATE, exactly as a flush would; running it again changes nothing. Returns the
    number of alerts filled."""
    dialect = connection.dialect.name
    alerts = table(
        "alert", column("event_at"), *(column(c) for c in (*DELAY_STEPS, *DELAY_STEPS.values()))
    )
    event_us = _epoch_microseconds(dialect, alerts.c.event_at)
    missing = or_(
        *(
            and_(alerts.c[step].is_not(None), alerts.c[delay].is_(None))
            for delay, step in DELAY_STEPS.items()
        )
    )
    statement = (
        update(alerts)
        .where(missing)
        .values(
            {
                delay: _epoch_microseconds(dialect, alerts.c[step]) - event_us
                for delay, step in DELAY_STEPS.items()
            }
        )
    )
    return connection.execute(statement).rowcount


# ---------------------------------------------------------------- delivery


@dataclass(frozen=True)
class DeliveryRun:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def deliver_due(
    session: Session,
    *,
    settings: Settings,
    now: dt.datetime,
    notifiers: Mapping[str, Notifier] | None = None,
) -> DeliveryRun:
    """Send every notification whose time has come, then record each result.

    Everything is sent before anything is recorded: recording writes the audit log, whose
    append lock is held until commit, and must not wait on mail servers and webhooks.
    """
    built: dict[str, Notifier | DeliveryResult] = dict(notifiers or {})
    results: list[tuple[AlertNotification, DeliveryResult]] = []
    for notification in repository.due_notifications(session, now, DELIVERY_BATCH):
        channel = notification.channel
        if channel not in built:
            try:
                built[channel] = build_notifier(channel, settings, session)
            except ValueError as error:  # misconfigured: fails its own notifications only
                built[channel] = DeliveryResult.failed(str(error), retryable=False)
        notifier = built[channel]
        result = notifier if isinstance(notifier, DeliveryResult) else _send(notification, notifier)
        results.append((notification, result))
    counts = dict.fromkeys(DeliveryStatus, 0)
    for notification, result in results:
        _attempted(session, notification, result, settings, now)
        counts[DeliveryStatus(notification.status)] += 1
    return DeliveryRun(
        sent=counts[DeliveryStatus.SENT],
        retrying=counts[DeliveryStatus.PENDING],
        failed=counts[DeliveryStatus.FAILED],
    )


def retry_delay(attempts: int) -> dt.timedelta:
    """Exponential back-off after the n-th failed attempt, capped."""
    delay: dt.timedelta = RETRY_BASE * 2 ** max(attempts - 1, 0)
    return min(delay, RETRY_CAP)


def _send(notification: AlertNotification, notifier: Notifier) -> DeliveryResult:
    alert = notification.alert
    message = Message(
        reference=notification.reference,
        alert_id=alert.id,
        event=f"alert.{notification.purpose}",
        recipient=notification.recipient,
        email=notification.email,
        subject=notification.subject,
        body=notification.body,
        data=structured(alert),
    )
    try:
        return notifier.send(message)
    except Exception as error:  # a broken channel must not stop the others
        log.exception("notifier raised", channel=notification.channel)
        return DeliveryResult.failed(f"{type(error).__name__}: {error}", retryable=True)


def _attempted(
    session: Session,
    notification: AlertNotification,
    result: DeliveryResult,
    settings: Settings,
    now: dt.datetime,
) -> None:
    alert = notification.alert
    notification.attempts += 1
    where: dict[str, object] = {
        "channel": notification.channel,
        "recipient": notification.recipient,
    }
    if result.delivered:
        notification.status = DeliveryStatus.SENT
        notification.sent_at = now
        notification.provider_reference = result.provider_reference
        notification.last_error = None
        if (
            notification.purpose == "raised"
            and notification.recipient == alert.responsible_officer
            and alert.notified_at is None
        ):
            alert.notified_at = now
            record_change(session, alert, None, "notified", now, where)
        return
    notification.last_error = (result.error or "unknown error")[:1000]
    if not result.retryable or notification.attempts >= settings.notification_max_attempts:
        notification.status = DeliveryStatus.FAILED
        record_change(
            session,
            alert,
            None,
            "delivery_failed",
            now,
            {**where, "attempts": notification.attempts, "error": notification.last_error},
        )
    else:
        notification.next_attempt_at = now + retry_delay(notification.attempts)


def _required_note(note: str) -> str:
    note = (note or "").strip()
    if not note:
        raise ValueError("note: must say why (it is part of the enforcement record)")
    return note


def _scope_or_all(principal: Principal | None) -> ColumnElement[bool]:
    return repository.EVERYTHING if principal is None else scope.visible_to(principal)
