"""Delivery through the configured channels: sent after the alert, retried, never lost."""

from __future__ import annotations

import datetime as dt
import uuid
from email import message_from_bytes

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.alerts import service
from tagwatch.alerts.models import Alert, AlertNotification, AlertStatus, DeliveryStatus
from tagwatch.db.base import utcnow
from tagwatch.settings import Settings

WEBHOOK_SECRET = "webhook-secret-for-the-tests"
SERVICE_ID = str(uuid.uuid4())
NOTIFY_SECRET = str(uuid.uuid4())


def _raise(db: Session, violation_id: int, settings: Settings, now: dt.datetime) -> Alert:
    [alert] = service.sync_violations(
        db, [violation_id], evaluated_at=now, settings=settings, now=now
    )
    return alert


def _notifications(db: Session, alert: Alert, channel: str) -> list[AlertNotification]:
    return list(
        db.scalars(
            select(AlertNotification)
            .where(AlertNotification.alert_id == alert.id, AlertNotification.channel == channel)
            .order_by(AlertNotification.id)
        )
    )


def test_outside_channels_are_sent_by_the_delivery_task_after_the_alert(
    db: Session, make_case, make_violation, make_user, http_receiver
) -> None:
    make_user("a.officer", "probation_practitioner")
    settings = Settings(
        notifiers="outbox,webhook", webhook_url=http_receiver.url, webhook_secret=WEBHOOK_SECRET
    )
    now = utcnow()
    alert = _raise(db, make_violation(make_case()).id, settings, now)

    [pending] = _notifications(db, alert, "webhook")
    assert pending.status == DeliveryStatus.PENDING and http_receiver.received == []
    [outbox] = _notifications(db, alert, "outbox")
    assert outbox.status == DeliveryStatus.SENT and alert.notified_at == now

    sent_at = now + dt.timedelta(seconds=3)
    run = service.deliver_due(db, settings=settings, now=sent_at)

    assert run == service.DeliveryRun(sent=1)
    assert (pending.status, pending.sent_at, pending.attempts) == (DeliveryStatus.SENT, sent_at, 1)
    [request] = http_receiver.received
    document = request.json()
    assert document["event"] == "alert.raised"
    assert document["alert"]["alert_id"] == alert.id
    assert document["recipient"] == "a.officer"
    assert request.headers["x-tagwatch-delivery"] == pending.reference
    assert service.deliver_due(db, settings=settings, now=sent_at) == service.DeliveryRun()


def test_notified_time_is_the_first_delivery_to_the_officer(
    db: Session, make_case, make_violation, make_user, http_receiver
) -> None:
    make_user("a.officer", "probation_practitioner")
    settings = Settings(
        notifiers="webhook", webhook_url=http_receiver.url, webhook_secret=WEBHOOK_SECRET
    )
    now = utcnow()
    alert = _raise(db, make_violation(make_case()).id, settings, now)
    assert alert.notified_at is None

    service.deliver_due(db, settings=settings, now=now + dt.timedelta(seconds=4))
    assert alert.notified_at == now + dt.timedelta(seconds=4)


def test_failures_are_retried_with_back_off_then_recorded_and_the_alert_kept(
    db: Session, make_case, make_violation, make_user, http_receiver
) -> None:
    make_user("a.officer", "probation_practitioner")
    http_receiver.status = 503
    settings = Settings(
        notifiers="webhook",
        webhook_url=http_receiver.url,
        webhook_secret=WEBHOOK_SECRET,
        notification_max_attempts=3,
    )
    now = utcnow()
    alert = _raise(db, make_violation(make_case()).id, settings, now)
    [notification] = _notifications(db, alert, "webhook")

    assert service.deliver_due(db, settings=settings, now=now) == service.DeliveryRun(retrying=1)
    assert notification.next_attempt_at == now + service.retry_delay(1)
    assert service.retry_delay(2) == 2 * service.retry_delay(1)
    # Not due yet: nothing is sent again.
    assert service.deliver_due(db, settings=settings, now=now + dt.timedelta(seconds=10)) == (
        service.DeliveryRun()
    )
    second = notification.next_attempt_at
    assert service.deliver_due(db, settings=settings, now=second).retrying == 1
    third = notification.next_attempt_at
    assert service.deliver_due(db, settings=settings, now=third) == service.DeliveryRun(failed=1)

    assert notification.status == DeliveryStatus.FAILED and notification.attempts == 3
    assert "503" in (notification.last_error or "")
    assert len(http_receiver.received) == 3
    failure = [h for h in alert.history if h.action == "delivery_failed"]
    assert failure and failure[0].detail["attempts"] == 3
    assert alert.status == AlertStatus.OPEN
    # Bounded: no further attempts, however long we wait.
    http_receiver.status = 200
    service.deliver_due(db, settings=settings, now=third + dt.timedelta(days=1))
    assert len(http_receiver.received) == 3


def test_a_refusal_that_cannot_pass_fails_at_once(
    db: Session, make_case, make_violation, http_receiver
) -> None:
    http_receiver.status = 400
    settings = Settings(
        notifiers="webhook", webhook_url=http_receiver.url, webhook_secret=WEBHOOK_SECRET
    )
    now = utcnow()
    alert = _raise(db, make_violation(make_case()).id, settings, now)
    assert service.deliver_due(db, settings=settings, now=now) == service.DeliveryRun(failed=1)
    [notification] = _notifications(db, alert, "webhook")
    assert notification.attempts == 1 and notification.status == DeliveryStatus.FAILED


def test_a_misconfigured_channel_fails_its_own_notifications_only(
    db: Session, make_case, make_violation, make_user, http_receiver
) -> None:
    make_user("a.officer", "probation_practitioner")
    settings = Settings(
        notifiers="outbox,notify,webhook",
        notify_api_key="",
        webhook_url=http_receiver.url,
        webhook_secret=WEBHOOK_SECRET,
    )
    now = utcnow()
    alert = _raise(db, make_violation(make_case()).id, settings, now)
    run = service.deliver_due(db, settings=settings, now=now)
    assert run == service.DeliveryRun(sent=1, failed=1)
    [notify] = _notifications(db, alert, "notify")
    assert "notify_api_key" in (notify.last_error or "")
    assert len(http_receiver.received) == 1


def test_notify_delivery_uses_the_officers_email(
    db: Session, make_case, make_violation, make_user, http_receiver
) -> None:
    make_user("a.officer", "probation_practitioner", email="a.officer@justice.example")
    http_receiver.status = 201
    http_receiver.reply = {"id": str(uuid.uuid4())}
    settings = Settings(
        notifiers="notify",
        notify_api_key=f"tagwatch-{SERVICE_ID}-{NOTIFY_SECRET}",
        notify_template_id=str(uuid.uuid4()),
        notify_base_url=http_receiver.url,
    )
    now = utcnow()
    alert = _raise(db, make_violation(make_case()).id, settings, now)
    service.deliver_due(db, settings=settings, now=now)

    [request] = http_receiver.received
    assert request.path == "/v2/notifications/email"
    token = request.headers["authorization"].removeprefix("Bearer ")
    assert jwt.decode(token, NOTIFY_SECRET, algorithms=["HS256"])["iss"] == SERVICE_ID
    body = request.json()
    assert body["email_address"] == "a.officer@justice.example"
    assert body["personalisation"]["alert_id"] == str(alert.id)
    [notification] = _notifications(db, alert, "notify")
    assert notification.provider_reference == http_receiver.reply["id"]


def test_smtp_delivery_of_an_escalation_reaches_the_managers(
    db: Session, make_case, make_violation, make_user, smtp_receiver
) -> None:
    make_user("a.officer", "probation_practitioner")
    make_user("m.one", "probation_manager", email="m.one@justice.example")
    make_user("m.two", "probation_manager", email="m.two@justice.example")
    settings = Settings(
        notifiers="smtp",
        smtp_host=smtp_receiver.host,
        smtp_port=smtp_receiver.port,
        smtp_sender="alerts@tagwatch.example",
        escalation_minutes=30,
    )
    now = utcnow()
    alert = _raise(db, make_violation(make_case()).id, settings, now)
    later = now + dt.timedelta(minutes=31)
    service.escalate_due(db, settings=settings, now=later)
    run = service.deliver_due(db, settings=settings, now=later)

    assert run.sent == 3
    recipients = sorted(address for e in smtp_receiver.envelopes for address in e.rcpt_tos)
    assert recipients == [
        "a.officer@probation.example",
        "m.one@justice.example",
        "m.two@justice.example",
    ]
    subjects = {
        message_from_bytes(e.original_content or b"")["Subject"] for e in smtp_receiver.envelopes
    }
    assert f"Escalated: alert {alert.id} not acknowledged" in subjects


@pytest.mark.parametrize("channel", ["notify", "smtp"])
def test_email_channels_fail_without_an_address(
    db: Session, make_case, make_violation, channel: str
) -> None:
    # No user account for the officer: nothing to send an email to, and that is recorded.
    settings = Settings(
        notifiers=channel,
        notify_api_key=f"tagwatch-{SERVICE_ID}-{NOTIFY_SECRET}",
        notify_template_id="t",
        smtp_host="127.0.0.1",
        smtp_sender="alerts@tagwatch.example",
    )
    now = utcnow()
    alert = _raise(db, make_violation(make_case(officer="nobody")).id, settings, now)
    assert service.deliver_due(db, settings=settings, now=now) == service.DeliveryRun(failed=1)
    [notification] = _notifications(db, alert, channel)
    assert "no email address for nobody" in (notification.last_error or "")
