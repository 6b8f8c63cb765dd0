"""Email through an SMTP relay (the organisation's own mail server)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from tagwatch.alerts.notifiers.base import DeliveryResult, Message


class SmtpNotifier:
    channel = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        if not host:
            raise ValueError("smtp_host: must name the mail server")
        if not sender:
            raise ValueError("smtp_sender: must be the address alerts are sent from")
        self._host = host
        self._port = port
        self._sender = sender
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout

    def send(self, message: Message) -> DeliveryResult:
        if not message.email:
            return DeliveryResult.failed(
                f"no email address for {message.recipient}", retryable=False
            )
        email = self._compose(message)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as server:
                if self._starttls:
                    server.starttls(context=ssl.create_default_context())
                if self._username:
                    server.login(self._username, self._password)
                server.send_message(email)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _reply in error.recipients.values()]
            return DeliveryResult.failed(
                f"mail server refused {message.email}: {error.recipients}",
                retryable=all(400 <= code < 500 for code in codes),
            )
        except smtplib.SMTPResponseException as error:
            return DeliveryResult.failed(
                f"mail server replied {error.smtp_code}: {error.smtp_error!r}",
                retryable=400 <= error.smtp_code < 500,
            )
        except (smtplib.SMTPException, OSError) as error:
            return DeliveryResult.failed(f"mail server unreachable: {error}", retryable=True)
        return DeliveryResult.ok(email["Message-ID"])

    def _compose(self, message: Message) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.email
        email["Subject"] = message.subject
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = make_msgid(idstring=message.reference)
        email["X-Tagwatch-Reference"] = message.reference
        email.set_content(message.body)
        return email
