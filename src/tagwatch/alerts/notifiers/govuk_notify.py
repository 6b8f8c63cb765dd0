"""GOV.UK Notify email, through the service's own Python client.

The Notify template is expected to show the personalisation fields `subject` and `body`
(as `((subject))` and `((body))`); the remaining fields let a richer template lay them out.
"""

from __future__ import annotations

from notifications_python_client.errors import APIError
from notifications_python_client.notifications import NotificationsAPIClient

from tagwatch.alerts.notifiers.base import DeliveryResult, Message, http_status_retryable

NOTIFY_BASE_URL = "https://api.notifications.service.gov.uk"
# An API key is "<key name>-<service id (UUID)>-<secret (UUID)>".
_UUID_LENGTH = 36


class GovukNotifyNotifier:
    channel = "notify"

    def __init__(
        self,
        api_key: str,
        template_id: str,
        base_url: str = NOTIFY_BASE_URL,
        timeout: float = 10.0,
    ) -> None:
        if len(api_key) < 2 * _UUID_LENGTH + 2:
            raise ValueError(
                "notify_api_key: must be '<key name>-<service id>-<secret>' as issued by Notify"
            )
        if not template_id:
            raise ValueError("notify_template_id: must name the Notify email template")
        self._client = NotificationsAPIClient(  # type: ignore[no-untyped-call]
            api_key, base_url=base_url, timeout=timeout
        )
        self._template_id = template_id

    def send(self, message: Message) -> DeliveryResult:
        if not message.email:
            return DeliveryResult.failed(
                f"no email address for {message.recipient}", retryable=False
            )
        personalisation = {key: str(value) for key, value in message.data.items()}
        personalisation.update(subject=message.subject, body=message.body)
        try:
            response = self._client.send_email_notification(  # type: ignore[no-untyped-call]
                email_address=message.email,
                template_id=self._template_id,
                personalisation=personalisation,
                reference=message.reference,
            )
        except APIError as error:
            return DeliveryResult.failed(
                f"Notify refused the email: {error}",
                retryable=http_status_retryable(error.status_code),
            )
        return DeliveryResult.ok(str(response.get("id")) if response else None)
