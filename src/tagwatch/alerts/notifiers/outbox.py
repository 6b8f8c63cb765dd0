"""The in-app outbox: a row the portal shows to the recipient. The default channel."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tagwatch.alerts.models import OutboxMessage
from tagwatch.alerts.notifiers.base import DeliveryResult, Message


class OutboxNotifier:
    channel = "outbox"

    def __init__(self, session: Session) -> None:
        self._session = session

    def send(self, message: Message) -> DeliveryResult:
        row = OutboxMessage(
            alert_id=message.alert_id,
            recipient=message.recipient,
            subject=message.subject,
            body=message.body,
            reference=message.reference,
        )
        self._session.add(row)
        self._session.flush()
        return DeliveryResult.ok(f"outbox-{row.id}")
