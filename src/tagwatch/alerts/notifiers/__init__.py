"""Notification channels behind one interface, chosen by `settings.notifiers`."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tagwatch.alerts.notifiers.base import DeliveryResult, Message, Notifier
from tagwatch.alerts.notifiers.govuk_notify import GovukNotifyNotifier
from tagwatch.alerts.notifiers.outbox import OutboxNotifier
from tagwatch.alerts.notifiers.smtp import SmtpNotifier
from tagwatch.alerts.notifiers.webhook import WebhookNotifier
from tagwatch.settings import Settings

__all__ = ["CHANNELS", "DeliveryResult", "Message", "Notifier", "build_notifier", "channels"]

CHANNELS = ("outbox", "notify", "smtp", "webhook")


def channels(settings: Settings) -> list[str]:
    """The configured channels, in order, each once; an unknown name is an error."""
    names = [name.strip() for name in settings.notifiers.split(",") if name.strip()]
    unknown = sorted(set(names) - set(CHANNELS))
    if unknown:
        raise ValueError(f"notifiers: unknown channel {', '.join(unknown)}; use {CHANNELS}")
    return list(dict.fromkeys(names))


def build_notifier(channel: str, settings: Settings, session: Session | None = None) -> Notifier:
    """The notifier for `channel`; a missing or bad setting is a ValueError naming it."""
    if channel == "outbox":
        if session is None:
            raise ValueError("outbox: the in-app outbox needs a database session")
        return OutboxNotifier(session)
    if channel == "notify":
        return GovukNotifyNotifier(
            settings.notify_api_key, settings.notify_template_id, settings.notify_base_url
        )
    if channel == "smtp":
        return SmtpNotifier(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    if channel == "webhook":
        return WebhookNotifier(settings.webhook_url, settings.webhook_secret)
    raise ValueError(f"notifiers: unknown channel {channel!r}; use {CHANNELS}")
