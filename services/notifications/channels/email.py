"""Email over real SMTP: a multipart message with the plain text and an autoescaped HTML part.

The Message-ID is derived from the delivery id, so a send repeated after a crash carries the same
Message-ID as the first one and mail systems (and people's clients) treat it as one message.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import ClassVar, Literal

from services.notifications.channels.base import PermanentFailure, TransientFailure
from services.notifications.model import Outgoing, ProviderPayload, Recipient, RenderedMessage


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0

    @property
    def sender_domain(self) -> str:
        return parseaddr(self.sender)[1].rpartition("@")[2] or "appeals.invalid"


def compose_email(
    server: SmtpServer,
    message: RenderedMessage,
    html: str,
    *,
    to: str,
    delivery_id: str,
    sent_at_s: float,
) -> EmailMessage:
    """The MIME message for one delivery; pure."""
    email = EmailMessage()
    email["From"] = server.sender
    email["To"] = to
    email["Subject"] = message.subject
    email["Date"] = format_datetime(datetime.fromtimestamp(sent_at_s, UTC))
    email["Message-ID"] = f"<{delivery_id}@{server.sender_domain}>"
    # RFC 3834: an automatic message; out-of-office replies and mail loops are not wanted.
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(message.body, charset="utf-8")
    email.add_alternative(html, subtype="html", charset="utf-8")
    # After the content: setting content drops every Content-* header set before.
    email["Content-Language"] = message.locale
    return email


class EmailChannel:
    name: ClassVar[str] = "email"

    def __init__(
        self,
        server: SmtpServer,
        html: Callable[[RenderedMessage], str],
        *,
        clock: Callable[[], float],
    ) -> None:
        self._server = server
        self._html = html
        self._clock = clock

    def address(self, recipient: Recipient) -> str | None:
        email = recipient.contact.email
        try:
            # Rejects what no SMTP server would take (no domain, line breaks, ...).
            return str(Address(addr_spec=email)) if email else None
        except (ValueError, IndexError):
            return None

    def render(
        self, recipient: Recipient, message: RenderedMessage, *, address: str, delivery_id: str
    ) -> ProviderPayload:
        return {
            "to": address,
            "from": self._server.sender,
            "subject": message.subject,
            "message_id": f"<{delivery_id}@{self._server.sender_domain}>",
        }

    async def send(self, outgoing: Outgoing) -> None:
        email = compose_email(
            self._server,
            outgoing.message,
            self._html(outgoing.message),
            to=outgoing.address,
            delivery_id=outgoing.delivery_id,
            sent_at_s=self._clock(),
        )
        # smtplib blocks; a worker thread keeps the event loop (and Kafka heartbeats) running.
        await asyncio.to_thread(self._send_blocking, email)

    def _send_blocking(self, email: EmailMessage) -> None:
        server = self._server
        try:
            smtp: smtplib.SMTP
            if server.security == "tls":
                context = ssl.create_default_context()
                smtp = smtplib.SMTP_SSL(
                    server.host, server.port, timeout=server.timeout_s, context=context
                )
            else:
                smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout_s)
            with smtp:
                if server.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if server.username is not None and server.password is not None:
                    smtp.login(server.username, server.password)
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            reason = f"recipient refused: {error.recipients}"
            if codes and all(code >= 500 for code in codes):
                raise PermanentFailure(reason) from error
            raise TransientFailure(reason) from error
        except smtplib.SMTPResponseException as error:
            reason = f"SMTP {error.smtp_code}: {error.smtp_error!r}"
            # A 5xx about the message itself (too large, rejected content) will not change;
            # anything about us (auth, sender) or a 4xx is worth another try.
            about_us = isinstance(
                error, smtplib.SMTPAuthenticationError | smtplib.SMTPSenderRefused
            )
            if error.smtp_code >= 500 and not about_us:
                raise PermanentFailure(reason) from error
            raise TransientFailure(reason) from error
        except (smtplib.SMTPException, OSError) as error:  # connect, disconnect, TLS, timeout
            raise TransientFailure(f"{type(error).__name__}: {error}") from error
