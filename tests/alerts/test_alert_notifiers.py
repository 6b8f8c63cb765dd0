"""Each notification channel against a local server that checks the documented contract."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from email import message_from_bytes
from email.message import Message as EmailMessage

import jwt
import pytest

from tagwatch.alerts.notifiers import build_notifier, channels
from tagwatch.alerts.notifiers.base import Message
from tagwatch.alerts.notifiers.govuk_notify import GovukNotifyNotifier
from tagwatch.alerts.notifiers.smtp import SmtpNotifier
from tagwatch.alerts.notifiers.webhook import WebhookNotifier
from tagwatch.settings import Settings

SERVICE_ID = str(uuid.uuid4())
SECRET = str(uuid.uuid4())
API_KEY = f"tagwatch_test-{SERVICE_ID}-{SECRET}"
TEMPLATE_ID = str(uuid.uuid4())
WEBHOOK_SECRET = "a-shared-secret-of-some-length"


def _message(email: str | None = "officer@probation.example") -> Message:
    return Message(
        reference="tagwatch-alert-7-notification-3",
        alert_id=7,
        event="alert.raised",
        recipient="a.officer",
        email=email,
        subject="Curfew absence: action needed",
        body="Left the curfew address at 22:14.",
        data={"alert_id": 7, "violation_type": "curfew_absence", "severity": "high"},
    )


# GOV.UK Notify: POST /v2/notifications/email, bearer JWT {iss: service id, iat} signed HS256
# with the key's secret, JSON body {email_address, template_id, personalisation, reference};
# 201 with the notification's id on success, {"status_code", "errors": [...]} on failure.


def test_notify_sends_the_documented_request(http_receiver) -> None:
    notification_id = str(uuid.uuid4())
    http_receiver.status = 201
    http_receiver.reply = {
        "id": notification_id,
        "reference": "tagwatch-alert-7-notification-3",
        "content": {"subject": "s", "body": "b", "from_email": "tagwatch@notify.example"},
        "uri": f"/v2/notifications/{notification_id}",
        "template": {"id": TEMPLATE_ID, "version": 1, "uri": "/v2/template/x"},
    }
    notifier = GovukNotifyNotifier(API_KEY, TEMPLATE_ID, base_url=http_receiver.url)

    result = notifier.send(_message())

    assert result.delivered and result.provider_reference == notification_id
    [request] = http_receiver.received
    assert request.path == "/v2/notifications/email"
    assert request.headers["content-type"] == "application/json"
    scheme, token = request.headers["authorization"].split(" ", 1)
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token) == {"typ": "JWT", "alg": "HS256"}
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["iss"] == SERVICE_ID
    assert abs(claims["iat"] - time.time()) < 30
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "not-the-secret", algorithms=["HS256"])
    body = request.json()
    assert body["email_address"] == "officer@probation.example"
    assert body["template_id"] == TEMPLATE_ID
    assert body["reference"] == "tagwatch-alert-7-notification-3"
    assert body["personalisation"]["subject"] == "Curfew absence: action needed"
    assert body["personalisation"]["body"] == "Left the curfew address at 22:14."
    assert body["personalisation"]["violation_type"] == "curfew_absence"
    # Notify personalisation values are strings.
    assert all(isinstance(value, str) for value in body["personalisation"].values())


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (403, False), (429, True), (500, True)]
)
def test_notify_failures_say_whether_to_retry(http_receiver, status: int, retryable: bool) -> None:
    http_receiver.status = status
    http_receiver.reply = {
        "status_code": status,
        "errors": [{"error": "BadRequestError", "message": "Can't send to this recipient"}],
    }
    notifier = GovukNotifyNotifier(API_KEY, TEMPLATE_ID, base_url=http_receiver.url)

    result = notifier.send(_message())

    assert not result.delivered
    assert result.retryable is retryable
    assert str(status) in (result.error or "")


def test_notify_without_an_email_address_fails_without_calling() -> None:
    notifier = GovukNotifyNotifier(API_KEY, TEMPLATE_ID, base_url="http://127.0.0.1:9")
    result = notifier.send(_message(email=None))
    assert not result.delivered and not result.retryable
    assert "a.officer" in (result.error or "")


def test_notify_refuses_a_malformed_key() -> None:
    with pytest.raises(ValueError, match="notify_api_key"):
        GovukNotifyNotifier("too-short", TEMPLATE_ID)


# SMTP (RFC 5321/5322): MAIL FROM the configured sender, RCPT TO the recipient, a message
# with From, To, Subject, Date and Message-ID headers and the rendered body.


def _smtp_notifier(smtp_receiver) -> SmtpNotifier:
    return SmtpNotifier(smtp_receiver.host, smtp_receiver.port, "alerts@tagwatch.example")


def test_smtp_delivers_a_well_formed_email(smtp_receiver) -> None:
    result = _smtp_notifier(smtp_receiver).send(_message())

    assert result.delivered
    [envelope] = smtp_receiver.envelopes
    assert envelope.mail_from == "alerts@tagwatch.example"
    assert envelope.rcpt_tos == ["officer@probation.example"]
    email: EmailMessage = message_from_bytes(envelope.original_content or b"")
    assert email["From"] == "alerts@tagwatch.example"
    assert email["To"] == "officer@probation.example"
    assert email["Subject"] == "Curfew absence: action needed"
    assert email["Date"] and email["Message-ID"] == result.provider_reference
    assert email["X-Tagwatch-Reference"] == "tagwatch-alert-7-notification-3"
    assert email.get_payload(decode=True).decode().strip() == "Left the curfew address at 22:14."


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("550 5.1.1 No such mailbox", False), ("451 4.3.0 Try again later", True)],
)
def test_smtp_refusals_say_whether_to_retry(smtp_receiver, reply: str, retryable: bool) -> None:
    smtp_receiver.rcpt_reply = reply
    result = _smtp_notifier(smtp_receiver).send(_message())
    assert not result.delivered and result.retryable is retryable
    assert smtp_receiver.envelopes == []


def test_smtp_unreachable_server_is_retryable(smtp_receiver) -> None:
    notifier = SmtpNotifier("127.0.0.1", 9, "alerts@tagwatch.example", timeout=2)
    result = notifier.send(_message())
    assert not result.delivered and result.retryable


# Webhook: POST JSON, X-Tagwatch-Signature = sha256=HMAC-SHA256(secret, "<timestamp>.<body>").


def test_webhook_posts_signed_json(http_receiver) -> None:
    notifier = WebhookNotifier(http_receiver.url + "/hooks/alerts", WEBHOOK_SECRET)

    result = notifier.send(_message())

    assert result.delivered
    [request] = http_receiver.received
    assert request.path == "/hooks/alerts"
    assert request.headers["content-type"] == "application/json"
    timestamp = request.headers["x-tagwatch-timestamp"]
    assert abs(int(timestamp) - time.time()) < 30
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(request.headers["x-tagwatch-signature"], f"sha256={expected}")
    assert request.headers["x-tagwatch-delivery"] == "tagwatch-alert-7-notification-3"
    document = request.json()
    assert document["event"] == "alert.raised"
    assert document["recipient"] == "a.officer"
    assert document["alert"]["violation_type"] == "curfew_absence"


def test_webhook_signature_does_not_fit_an_altered_body(http_receiver) -> None:
    WebhookNotifier(http_receiver.url, WEBHOOK_SECRET).send(_message())
    [request] = http_receiver.received
    altered = request.body.replace(b"curfew_absence", b"exclusion_zone")
    assert altered != request.body
    recomputed = hmac.new(
        WEBHOOK_SECRET.encode(),
        f"{request.headers['x-tagwatch-timestamp']}.".encode() + altered,
        hashlib.sha256,
    ).hexdigest()
    assert request.headers["x-tagwatch-signature"] != f"sha256={recomputed}"


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (410, False), (503, True)])
def test_webhook_failures_say_whether_to_retry(http_receiver, status: int, retryable: bool) -> None:
    http_receiver.status = status
    result = WebhookNotifier(http_receiver.url, WEBHOOK_SECRET).send(_message())
    assert not result.delivered and result.retryable is retryable


def test_webhook_unreachable_is_retryable() -> None:
    result = WebhookNotifier("http://127.0.0.1:9/x", WEBHOOK_SECRET, timeout=2).send(_message())
    assert not result.delivered and result.retryable


def test_channels_are_parsed_and_checked() -> None:
    assert channels(Settings(notifiers=" outbox, webhook,outbox")) == ["outbox", "webhook"]
    with pytest.raises(ValueError, match="pager"):
        channels(Settings(notifiers="outbox,pager"))
    with pytest.raises(ValueError, match="webhook_secret"):
        build_notifier("webhook", Settings(webhook_url="http://x", webhook_secret="short"))


def test_the_app_refuses_to_start_with_a_misconfigured_channel(tmp_path) -> None:
    from tagwatch.app import create_app

    base = {"database_url": f"sqlite:///{tmp_path / 'x.db'}", "run_periodic_tasks": False}
    with pytest.raises(ValueError, match="notifiers: unknown channel pager"):
        create_app(Settings(notifiers="outbox,pager", **base))
    with pytest.raises(ValueError, match="smtp_host"):
        create_app(Settings(notifiers="outbox,smtp", **base))
    assert create_app(Settings(notifiers="outbox", **base)) is not None
