"""The one interface every notification channel implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    """One rendered notification for one recipient (or, for a webhook, for the receiving system).

    `reference` is unique per delivery, so a receiver can drop a retried duplicate.
    `data` carries the alert's fields for channels that send structured content.
    """

    reference: str
    alert_id: int
    event: str
    recipient: str
    email: str | None
    subject: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryResult:
    delivered: bool
    provider_reference: str | None = None
    error: str | None = None
    # False when sending the same message again cannot succeed (bad address, refused request).
    retryable: bool = True

    @classmethod
    def ok(cls, provider_reference: str | None = None) -> DeliveryResult:
        return cls(delivered=True, provider_reference=provider_reference)

    @classmethod
    def failed(cls, error: str, *, retryable: bool) -> DeliveryResult:
        return cls(delivered=False, error=error, retryable=retryable)


class Notifier(Protocol):
    channel: str

    def send(self, message: Message) -> DeliveryResult: ...


def http_status_retryable(status: int) -> bool:
    """Server errors, timeouts and rate limits may pass later; other refusals will not."""
    return status >= 500 or status in (408, 425, 429)
