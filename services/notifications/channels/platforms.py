"""The platforms' own channels: Facebook, Instagram, WhatsApp and Horizon, and any other declared
platform (``appeals/platforms.yaml``) in a generic shape until it has an adapter.

Each adapter shapes the message the way its platform's API takes it and hands the payload to a
:class:`Provider`: the platform's HTTP endpoint when one is configured, else the local
:class:`RecordingSink`, whose record is the outbox document the notifier writes after the send.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol

import httpx

from appeals.platforms import Platform
from services.notifications.channels.base import PermanentFailure, TransientFailure
from services.notifications.model import Outgoing, ProviderPayload, Recipient, RenderedMessage

# HTTP statuses after which the same request may succeed later.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class Provider(Protocol):
    async def deliver(self, payload: ProviderPayload, *, delivery_id: str) -> None: ...


class RecordingSink:
    """Local stand-in for every platform API: accepts everything. The delivery is recorded by
    the notifier in the outbox right after, so ``GET /v1/appeals/{id}/notifications`` shows
    exactly what a platform would have received."""

    async def deliver(self, payload: ProviderPayload, *, delivery_id: str) -> None:
        return None


# Maps a provider's error answer to a failure; None means "use the HTTP status alone".
ErrorClassifier = Callable[[int, Any], TransientFailure | PermanentFailure | None]


class HttpProvider:
    """A platform API that takes the payload as a JSON POST with a bearer token."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        token: str,
        *,
        classify: ErrorClassifier | None = None,
    ) -> None:
        self._client = client
        self._url = url
        self._token = token
        self._classify = classify

    async def deliver(self, payload: ProviderPayload, *, delivery_id: str) -> None:
        try:
            response = await self._client.post(
                self._url,
                json=payload,
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Idempotency-Key": delivery_id,
                },
            )
        except httpx.HTTPError as error:  # connect, read, timeout: nothing says it arrived
            raise TransientFailure(f"{type(error).__name__}: {error}") from error
        if response.is_success:
            return
        raise http_failure(response, self._classify)


def http_failure(
    response: httpx.Response, classify: ErrorClassifier | None = None
) -> TransientFailure | PermanentFailure:
    """What a non-2xx answer means for this send."""
    if classify is not None:
        try:
            body: Any = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        classified = classify(response.status_code, body)
        if classified is not None:
            return classified
    reason = f"HTTP {response.status_code}: {response.text[:200]}"
    if response.status_code in RETRYABLE_STATUSES:
        return TransientFailure(reason, retry_after_s=retry_after(response))
    return PermanentFailure(reason)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta or HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    date = response.headers.get("date")
    now = parsedate_to_datetime(date) if date else None
    return max(0.0, (moment - now).total_seconds()) if now else None


def _app_link(recipient: Recipient) -> str:
    # Where the product opens the appeal when the person taps the notification.
    return f"/appeals/{recipient.appeal_id}"


class PlatformChannel(ABC):
    """Reaches people on one platform, by their user id there."""

    name: ClassVar[str]
    platform: ClassVar[str]

    @staticmethod
    def classify_errors(status: int, body: Any) -> TransientFailure | PermanentFailure | None:
        """What the platform API's error answer means (None: the HTTP status alone says)."""
        return None

    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    def address(self, recipient: Recipient) -> str | None:
        # Ids are per platform: an Instagram id means nothing to Facebook.
        return recipient.user_id if recipient.platform == self.platform else None

    @abstractmethod
    def render(
        self, recipient: Recipient, message: RenderedMessage, *, address: str, delivery_id: str
    ) -> ProviderPayload: ...

    async def send(self, outgoing: Outgoing) -> None:
        await self._provider.deliver(outgoing.payload, delivery_id=outgoing.delivery_id)


class FacebookInApp(PlatformChannel):
    """A Facebook in-app notification (shaped like Graph API app notifications)."""

    name = "facebook_in_app"
    platform = "facebook"

    def render(
        self, recipient: Recipient, message: RenderedMessage, *, address: str, delivery_id: str
    ) -> ProviderPayload:
        return {
            "recipient": {"id": address},
            "template": message.subject,
            "body": message.body,
            "href": _app_link(recipient),
            "ref": f"appeal_{message.template}",
        }


class InstagramDirect(PlatformChannel):
    """An Instagram direct message (shaped like the Instagram Messaging API send call)."""

    name = "instagram_dm"
    platform = "instagram"

    def render(
        self, recipient: Recipient, message: RenderedMessage, *, address: str, delivery_id: str
    ) -> ProviderPayload:
        return {
            "recipient": {"id": address},
            "message": {"text": f"{message.subject}\n\n{message.body}"},
        }


class PlatformNotification(PlatformChannel):
    """A declared platform's notification in a generic shape (its API's own shape comes with an
    adapter of its own): the person's id there, a title, a body and where the product opens the
    appeal. Made per platform by :func:`adapter_for`."""

    def render(
        self, recipient: Recipient, message: RenderedMessage, *, address: str, delivery_id: str
    ) -> ProviderPayload:
        return {
            "recipient": {"user_id": address},
            "title": message.subject,
            "body": message.body,
            "link": _app_link(recipient),
            "delivery_id": delivery_id,
        }


class HorizonHeadset(PlatformChannel):
    """A notification shown in the person's Horizon headset."""

    name = "horizon_headset"
    platform = "horizon"

    def render(
        self, recipient: Recipient, message: RenderedMessage, *, address: str, delivery_id: str
    ) -> ProviderPayload:
        return {
            "recipient": {"user_id": address},
            "notification": {
                "title": message.subject,
                "body": message.body,
                "category": "appeal_update",
                "deep_link": _app_link(recipient),
            },
        }


# WhatsApp Cloud API error codes (error.code in the answer body) that say something about the
# recipient rather than about the request: retrying the same number can never work for these...
WHATSAPP_UNREACHABLE = {
    131026: "the number is not on WhatsApp or cannot receive this message",
    131030: "the number is not on the allowed recipient list",
    131049: "WhatsApp chose not to deliver to keep engagement healthy",
}
# ...and these are throttling or an outage on Meta's side: later may work.
WHATSAPP_RETRYABLE = {
    130429: "throughput rate limit hit",
    131048: "spam rate limit hit",
    131056: "too many messages to this number",
    131000: "unknown WhatsApp error",
    131016: "WhatsApp service unavailable",
    2: "WhatsApp API service temporarily unavailable",
}


def classify_whatsapp_error(status: int, body: Any) -> TransientFailure | PermanentFailure | None:
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, int):
        return None
    if code in WHATSAPP_UNREACHABLE:
        return PermanentFailure(f"WhatsApp error {code}: {WHATSAPP_UNREACHABLE[code]}")
    if code in WHATSAPP_RETRYABLE:
        return TransientFailure(f"WhatsApp error {code}: {WHATSAPP_RETRYABLE[code]}")
    return None


class WhatsAppTemplate(PlatformChannel):
    """A WhatsApp Business Platform (Cloud API) template message.

    Business-initiated WhatsApp messages must use a template approved in advance, so the free
    text is not sent: the approved template (named after ours, per language) holds the wording
    and we fill its named body parameters. Reaches WhatsApp users by their WhatsApp id, and
    anyone else who gave a phone number.
    """

    name = "whatsapp_template"
    platform = "whatsapp"

    @staticmethod
    def classify_errors(status: int, body: Any) -> TransientFailure | PermanentFailure | None:
        return classify_whatsapp_error(status, body)

    TEMPLATE_PREFIX = "appeal_"

    def address(self, recipient: Recipient) -> str | None:
        if recipient.platform == self.platform:
            return recipient.user_id
        # The Cloud API takes the number with its country code, without the "+".
        return recipient.contact.phone.lstrip("+") or None

    def render(
        self, recipient: Recipient, message: RenderedMessage, *, address: str, delivery_id: str
    ) -> ProviderPayload:
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": address,
            "type": "template",
            # Echoed back in status webhooks: ties delivery receipts to our delivery.
            "biz_opaque_callback_data": delivery_id,
            "template": {
                "name": self.TEMPLATE_PREFIX + message.template,
                # WhatsApp spells language codes with underscores: de, en_US, pt_BR.
                "language": {"code": message.locale.replace("-", "_")},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "parameter_name": name, "text": value}
                            for name, value in message.parameters
                        ],
                    }
                ],
            },
        }


# The platforms whose API takes a payload of its own, by channel.
ADAPTERS: dict[str, type[PlatformChannel]] = {
    adapter.name: adapter
    for adapter in (FacebookInApp, InstagramDirect, WhatsAppTemplate, HorizonHeadset)
}


def adapter_for(platform: Platform) -> type[PlatformChannel]:
    """The adapter of a declared platform's channel: its own, else the generic shape."""
    adapter = ADAPTERS.get(platform.channel)
    if adapter is None:
        return type(
            f"{platform.display_name.replace(' ', '')}Notification",
            (PlatformNotification,),
            {"name": platform.channel, "platform": platform.name},
        )
    if adapter.platform != platform.name:
        raise ValueError(
            f"channel {platform.channel} is {adapter.platform}'s, not {platform.name}'s"
        )
    return adapter
