"""Alerts, their history, their deliveries and the in-app outbox.

An alert is raised once per subject (a confirmed violation, or an order past its fitting
deadline): `subject_key` is unique, so re-evaluation can never raise a second one. Its
timestamps measure the whole path from the event to the officer's acknowledgement.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tagwatch.db.base import Base, BigId, utcnow


class AlertKind(StrEnum):
    VIOLATION = "violation"
    AWAITING_FITTING = "awaiting_fitting"


class AlertStatus(StrEnum):
    OPEN = "open"  # raised, not yet acknowledged
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"  # an enforcement outcome is recorded
    WITHDRAWN = "withdrawn"  # re-evaluation found the violation no longer stands


class TamperFinding(StrEnum):
    CONFIRMED_TAMPER = "confirmed_tamper"
    DEVICE_FAULT = "device_fault"
    INCONCLUSIVE = "inconclusive"


class Outcome(StrEnum):
    NO_ACTION = "no_action"  # reasonable excuse, or nothing to enforce
    WARNING = "warning"
    BREACH_PROCEEDINGS = "breach_proceedings"
    RECALL = "recall"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up: a refusal that cannot pass, or the attempts ran out


class Alert(Base):
    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    # "violation:<id>" or "awaiting_fitting:<order id>": one alert per subject, ever.
    subject_key: Mapped[str] = mapped_column(String(80), unique=True)
    violation_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    order_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    allocation_id: Mapped[int | None] = mapped_column(BigInteger)
    person_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    violation_type: Mapped[str] = mapped_column(String(60))
    severity: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(String(500))
    needs_tamper_review: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default=AlertStatus.OPEN, index=True)
    responsible_officer: Mapped[str | None] = mapped_column(String(120), index=True)
    delivery_unit_code: Mapped[str | None] = mapped_column(String(40), index=True)

    # The path of an alert, each step timed by the clock that saw it.
    event_at: Mapped[dt.datetime]  # what happened (violation start, fitting deadline)
    received_at: Mapped[dt.datetime]  # the triggering record reached the server
    evaluated_at: Mapped[dt.datetime]  # the rules ran over it
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)  # ix_alert_raised_delays
    notified_at: Mapped[dt.datetime | None]  # first delivery to the officer
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))

    escalated_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    escalated_to: Mapped[list[str]] = mapped_column(JSON, default=list)

    tamper_finding: Mapped[str | None] = mapped_column(String(30))
    tamper_review_note: Mapped[str | None] = mapped_column(Text)
    tamper_reviewed_at: Mapped[dt.datetime | None]
    tamper_reviewed_by: Mapped[str | None] = mapped_column(String(120))

    outcome_due_at: Mapped[dt.datetime] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(30))
    outcome_note: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[dt.datetime | None]
    outcome_by: Mapped[str | None] = mapped_column(String(120))

    violation_ended_at: Mapped[dt.datetime | None]
    # Set while re-evaluation says the violation no longer stands (withdrawn or unconfirmed).
    violation_withdrawn_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # Microseconds from the event to each later step, kept as integers so that statistics
    # aggregate millions of alerts in SQL without reading a timestamp; filled on every flush
    # (`_fill_delays`), never by hand.
    event_to_raised_us: Mapped[int | None] = mapped_column(BigInteger)
    event_to_acknowledged_us: Mapped[int | None] = mapped_column(BigInteger)
    event_to_outcome_us: Mapped[int | None] = mapped_column(BigInteger)

    history: Mapped[list[AlertHistory]] = relationship(
        back_populates="alert", order_by="AlertHistory.id", cascade="all, delete-orphan"
    )
    notifications: Mapped[list[AlertNotification]] = relationship(
        back_populates="alert", order_by="AlertNotification.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_alert_status_raised", "status", "raised_at"),
        # By raised time, carrying what statistics read of each alert, so a period's alerts
        # are read from the index alone, in order, however the rows lie in the table.
        Index(
            "ix_alert_raised_delays",
            "raised_at",
            "kind",
            "order_id",
            "event_to_raised_us",
            "event_to_acknowledged_us",
            "event_to_outcome_us",
        ),
    )


# Delay column -> the step whose time it measures from `event_at`.
DELAY_STEPS = {
    "event_to_raised_us": "raised_at",
    "event_to_acknowledged_us": "acknowledged_at",
    "event_to_outcome_us": "outcome_at",
}


def microseconds_between(begin: dt.datetime | None, end: dt.datetime | None) -> int | None:
    if begin is None or end is None:
        return None
    return (end - begin) // dt.timedelta(microseconds=1)


@event.listens_for(Alert, "before_insert")
@event.listens_for(Alert, "before_update")
def _fill_delays(_mapper: Any, _connection: Any, alert: Alert) -> None:
    for column, step in DELAY_STEPS.items():
        setattr(alert, column, microseconds_between(alert.event_at, getattr(alert, step)))


class AlertHistory(Base):
    """Every change to an alert: who (a username, or "system"), when, what."""

    __tablename__ = "alert_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    alert: Mapped[Alert] = relationship(back_populates="history")


class AlertNotification(Base):
    """One message about an alert, to one recipient, through one channel, with its attempts."""

    __tablename__ = "alert_notification"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))  # raised, escalated
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    provider_reference: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]

    alert: Mapped[Alert] = relationship(back_populates="notifications")

    __table_args__ = (
        UniqueConstraint("alert_id", "purpose", "channel", "recipient"),
        Index("ix_alert_notification_due", "status", "next_attempt_at"),
    )

    @property
    def reference(self) -> str:
        return notification_reference(self.alert_id, self.id)


def notification_reference(alert_id: int, notification_id: int) -> str:
    """A notification's reference: unique per delivery, stable across its retries."""
    return f"tagwatch-alert-{alert_id}-notification-{notification_id}"


class OutboxMessage(Base):
    """The in-app outbox: what a user sees in the portal's notifications."""

    __tablename__ = "outbox_message"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(120), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None]
