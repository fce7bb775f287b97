"""One-time verification codes, sent to an account's contact on file for the live-help service.

A person locked out of their account proves that they control it with a code sent to the
contact the platform has *on file* for it (``services/help``). The help service looks the
account up and asks notifications, the pipeline's only sender, to deliver the code: it names the
address and its kind (``user_id``: the platform's own recovery channel; ``phone``: WhatsApp;
``email``), never an address the person typed in, and notifications sends on the channel that
reaches that kind. The message is worded in the person's language from the
``verification_code`` template.

Once per request id: the same request again (its sender retried) answers "sent" without a second
message. What is kept (``codes``, ``_id`` = request id) is the channel, the address kind, the
locale and the message with the code masked, so the store never holds a usable code; with
``NOTIFICATIONS_KEEP_CODE_TEXT`` (DEVELOPMENT ONLY: ``make run`` and the tests set it, where every
platform channel is a local recording sink and this record is what the sink received) the message
is kept whole, and the code is also in the log, where a person trying ``make run`` reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from appeals_runtime.errors import TransientError, Unprocessable
from services.notifications.channels import ChannelDirectory
from services.notifications.channels.base import PermanentFailure, TransientFailure
from services.notifications.messages import PLATFORM_NAMES, MessageRenderer
from services.notifications.model import Contact, Outgoing, Recipient, RenderedMessage
from services.notifications.repository import NotificationsRepository
from services.notifications.service import Clock

log = logging.getLogger(__name__)

AddressKind = Literal["user_id", "phone", "email"]
TEMPLATE = "verification_code"
MASK = "••••••"


@dataclass(frozen=True)
class CodeRequest:
    request_id: str
    platform: str
    # The person's language (BCP 47) as the platform has it for the account.
    locale: str
    kind: AddressKind
    address: str
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class CodeSent:
    request_id: str
    channel: str
    # True when this request had been sent before: nothing went out this time.
    repeated: bool


class CodeSender:
    def __init__(
        self,
        repository: NotificationsRepository,
        renderer: MessageRenderer,
        channels: ChannelDirectory,
        *,
        clock: Clock,
        keep_text: bool = False,
    ) -> None:
        self._repository = repository
        self._renderer = renderer
        self._channels = channels
        self._clock = clock
        self._keep_text = keep_text

    async def send(self, request: CodeRequest) -> CodeSent:
        """Deliver the code once; :class:`Unprocessable` when it cannot go (expired, no channel
        reaches the address, the channel refuses it for good), :class:`TransientError` when
        trying again later may work."""
        earlier = await self._repository.code_sent(request.request_id)
        if earlier is not None:
            return CodeSent(request.request_id, str(earlier.get("channel", "")), repeated=True)
        now = self._clock()
        if request.expires_at <= now:
            raise Unprocessable("the code has expired already", code="code_expired")
        channel = self._channels.reaching(request.platform, request.kind)
        if channel is None:
            raise Unprocessable(
                f"no configured channel reaches a {request.kind} on {request.platform}",
                code="no_channel",
            )
        recipient = _recipient(request, now)
        address = channel.address(recipient)
        if address is None:
            raise Unprocessable(
                f"{channel.name} cannot reach this {request.kind}", code="no_channel"
            )
        message = self._message(request, now)
        delivery_id = f"code/{request.request_id}/{channel.name}"
        payload = channel.render(recipient, message, address=address, delivery_id=delivery_id)
        try:
            await channel.send(Outgoing(delivery_id, address, message, payload))
        except TransientFailure as failure:
            raise TransientError(
                f"{channel.name} did not take the code: {recipient.redact(failure.reason)}"
            ) from failure
        except PermanentFailure as failure:
            raise Unprocessable(
                f"{channel.name} refused the code: {recipient.redact(failure.reason)}",
                code="refused",
            ) from failure
        kept = message if self._keep_text else _masked(message, request.code)
        await self._repository.record_code(
            {
                "_id": request.request_id,
                "channel": channel.name,
                "platform": request.platform,
                "recipient": request.kind,
                "locale": kept.locale,
                "subject": kept.subject,
                "body": kept.body,
                "sent_at": now,
                "expires_at": request.expires_at,
            }
        )
        log.info(
            "verification code sent",
            extra={"request_id": request.request_id, "channel": channel.name},
        )
        if self._keep_text:
            # The local channels are recording sinks: a person trying `make run` reads the
            # code here. Never with real channels (keep_text is off outside development).
            log.warning(
                "DEVELOPMENT ONLY: code %s sent for %s on %s",
                request.code,
                request.request_id,
                channel.name,
            )
        return CodeSent(request.request_id, channel.name, repeated=False)

    def _message(self, request: CodeRequest, now: datetime) -> RenderedMessage:
        locale = self._renderer.locale_for(request.locale)
        minutes = max(1, round((request.expires_at - now).total_seconds() / 60))
        variables = {
            "platform_name": PLATFORM_NAMES.get(request.platform, request.platform),
            "code": request.code,
            "minutes": str(minutes),
        }
        return self._renderer.render_template(
            TEMPLATE,
            locale,
            variables,
            parameters={"code": request.code, "minutes": str(minutes)},
        )


def _recipient(request: CodeRequest, now: datetime) -> Recipient:
    """The request addressed like an appeal's recipient, which is what channels address: no
    appeal, only the platform, the language and the one address the help service named."""
    return Recipient(
        appeal_id=f"code/{request.request_id}",
        submitted_event_id=request.request_id,
        platform=request.platform,
        user_id=request.address if request.kind == "user_id" else "",
        locale=request.locale,
        country="",
        subject_kind="account",
        subject_id="",
        decision_policy="",
        decision_action="",
        decision_automated=False,
        received_at=now,
        contact=Contact(
            email=request.address if request.kind == "email" else "",
            phone=request.address if request.kind == "phone" else "",
        ),
    )


def _masked(message: RenderedMessage, code: str) -> RenderedMessage:
    return RenderedMessage(
        template=message.template,
        locale=message.locale,
        subject=message.subject.replace(code, MASK),
        body=message.body.replace(code, MASK),
        parameters=tuple((n, v.replace(code, MASK)) for n, v in message.parameters),
        direction=message.direction,
    )
