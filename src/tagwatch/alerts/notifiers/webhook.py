"""A JSON POST to another system, signed so the receiver can prove it came from us.

The signature is `X-Tagwatch-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with
the shared secret; `X-Tagwatch-Timestamp` (Unix seconds) is signed too, so a captured request
cannot be replayed later unnoticed. `X-Tagwatch-Delivery` is stable across retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from tagwatch.alerts.notifiers.base import DeliveryResult, Message, http_status_retryable

SIGNATURE_HEADER = "X-Tagwatch-Signature"
TIMESTAMP_HEADER = "X-Tagwatch-Timestamp"
DELIVERY_HEADER = "X-Tagwatch-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def payload(message: Message) -> bytes:
    document = {
        "event": message.event,
        "reference": message.reference,
        "recipient": message.recipient,
        "subject": message.subject,
        "body": message.body,
        "alert": message.data,
    }
    return json.dumps(document, sort_keys=True, default=str).encode()


class WebhookNotifier:
    channel = "webhook"

    def __init__(self, url: str, secret: str, timeout: float = 10.0) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("webhook_url: must be an http(s) URL")
        if len(secret) < 16:
            raise ValueError("webhook_secret: must be at least 16 characters")
        self._url = url
        self._secret = secret
        self._timeout = timeout

    def send(self, message: Message) -> DeliveryResult:
        body = payload(message)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            DELIVERY_HEADER: message.reference,
        }
        try:
            response = httpx.post(self._url, content=body, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as error:
            return DeliveryResult.failed(f"webhook unreachable: {error}", retryable=True)
        if response.is_success:
            return DeliveryResult.ok(response.headers.get("x-request-id"))
        return DeliveryResult.failed(
            f"webhook replied {response.status_code}",
            retryable=http_status_retryable(response.status_code),
        )
