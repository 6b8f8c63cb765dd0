"""Writing the notifications about alerts, a batch at a time (the transactional outbox).

One notification row per channel and recipient, in the transaction that raises or escalates
the alert. The in-app outbox is delivered there and then: its message is a row in the same
transaction, so it is written with the notification, already sent. The outside channels stay
pending for the delivery task, which sends them once the transaction is durable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from tagwatch.alerts import repository
from tagwatch.alerts.messages import render
from tagwatch.alerts.models import Alert, DeliveryStatus, notification_reference
from tagwatch.alerts.notifiers import channels
from tagwatch.settings import Settings

OUTBOX = "outbox"


class Recipient(Protocol):
    @property
    def username(self) -> str: ...
    @property
    def email(self) -> str | None: ...


@dataclass(frozen=True)
class Person:
    username: str
    email: str | None


@dataclass(frozen=True)
class Notice:
    """Tell `recipients` about an alert, for `purpose` (raised, escalated), on every channel.

    `alert` is what the message is rendered from: the alert, or the fields it was inserted
    with, id included.
    """

    alert: Alert | Mapping[str, Any]
    alert_id: int
    purpose: str
    recipients: Sequence[Recipient]


def delivers_at_once(settings: Settings) -> bool:
    """Whether raising an alert notifies its officer in the same transaction."""
    return OUTBOX in channels(settings)


def send(session: Session, notices: Sequence[Notice], settings: Settings, now: dt.datetime) -> None:
    """Write the notifications of `notices`, in order, and deliver the in-app ones."""
    if not notices:
        return
    configured = channels(settings)
    rows: list[dict[str, Any]] = []
    for notice in notices:
        subject, body = render(notice.purpose, notice.alert)
        for channel in configured:
            delivered = channel == OUTBOX
            rows.extend(
                {
                    "alert_id": notice.alert_id,
                    "purpose": notice.purpose,
                    "channel": channel,
                    "recipient": recipient.username,
                    "email": recipient.email,
                    "subject": subject[:300],
                    "body": body,
                    "status": DeliveryStatus.SENT if delivered else DeliveryStatus.PENDING,
                    "attempts": 1 if delivered else 0,
                    "next_attempt_at": now,
                    "sent_at": now if delivered else None,
                }
                for recipient in notice.recipients
            )
    ids = repository.insert_notifications(session, rows)
    outbox = {
        ids[row["alert_id"], row["purpose"], row["channel"], row["recipient"]]: row
        for row in rows
        if row["channel"] == OUTBOX
    }
    messages = [
        {
            "alert_id": row["alert_id"],
            "recipient": row["recipient"],
            "subject": row["subject"],
            "body": row["body"],
            "reference": notification_reference(row["alert_id"], notification_id),
        }
        for notification_id, row in outbox.items()
    ]
    message_ids = repository.insert_outbox(session, messages)
    # The provider reference `OutboxNotifier` gives a message it delivers (retries use it).
    repository.set_provider_references(
        session,
        {
            notification_id: f"outbox-{message_ids[message['reference']]}"
            for notification_id, message in zip(outbox, messages, strict=True)
        },
    )
