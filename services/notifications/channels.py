"""How a message reaches the appellant: one adapter per channel, all behind :class:`Channel`.

An adapter does two separate things: ``render`` shapes the message as its provider's API expects
it (pure), and ``send`` delivers that payload. Locally every adapter "sends" by recording the
delivery in the outbox, which is also the dedup record that makes each notification happen once.
A real provider plugs in behind the same interface: record the delivery in the outbox first
(still exactly one per appeal and event), then have a relay call the provider from the outbox,
so a crash between the two never sends twice without a record of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from services.notifications.model import Delivery, ProviderPayload, Recipient, RenderedMessage


class Outbox(Protocol):
    """Where deliveries are recorded (the repository)."""

    async def record_delivery(self, delivery: Delivery) -> bool:
        """True when recorded now, False when this (appeal, event) was already delivered."""
        ...


class Channel(Protocol):
    name: str

    def render(self, recipient: Recipient, message: RenderedMessage) -> ProviderPayload:
        """The provider-shaped request for ``message``; no I/O."""
        ...

    async def send(self, delivery: Delivery) -> bool:
        """Deliver; True when delivered now, False when it had been delivered before."""
        ...


class OutboxChannel(ABC):
    """Local delivery shared by every adapter: the recorded outbox stands in for the provider."""

    name: str

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    @abstractmethod
    def render(self, recipient: Recipient, message: RenderedMessage) -> ProviderPayload: ...

    async def send(self, delivery: Delivery) -> bool:
        return await self._outbox.record_delivery(delivery)


def _app_link(recipient: Recipient) -> str:
    # Where the product opens the appeal when the person taps the notification.
    return f"/appeals/{recipient.appeal_id}"


class FacebookInApp(OutboxChannel):
    """A Facebook in-app notification (shaped like Graph API app notifications)."""

    name = "facebook_in_app"

    def render(self, recipient: Recipient, message: RenderedMessage) -> ProviderPayload:
        return {
            "recipient": {"id": recipient.user_id},
            "template": message.subject,
            "body": message.body,
            "href": _app_link(recipient),
            "ref": f"appeal_{message.template}",
        }


class InstagramDirect(OutboxChannel):
    """An Instagram direct message (shaped like the Instagram Messaging API send call)."""

    name = "instagram_dm"

    def render(self, recipient: Recipient, message: RenderedMessage) -> ProviderPayload:
        return {
            "recipient": {"id": recipient.user_id},
            "message": {"text": f"{message.subject}\n\n{message.body}"},
        }


class WhatsAppTemplate(OutboxChannel):
    """A WhatsApp Business Platform (Cloud API) template message.

    Business-initiated WhatsApp messages must use a template approved in advance, so the free
    text is not sent: the approved template (named after ours, per language) holds the wording
    and we fill its named body parameters.
    """

    name = "whatsapp_template"
    TEMPLATE_PREFIX = "appeal_"

    def render(self, recipient: Recipient, message: RenderedMessage) -> ProviderPayload:
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient.user_id,
            "type": "template",
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


class HorizonHeadset(OutboxChannel):
    """A notification shown in the person's Horizon headset."""

    name = "horizon_headset"

    def render(self, recipient: Recipient, message: RenderedMessage) -> ProviderPayload:
        return {
            "recipient": {"user_id": recipient.user_id},
            "notification": {
                "title": message.subject,
                "body": message.body,
                "category": "appeal_update",
                "deep_link": _app_link(recipient),
            },
        }


class UnknownPlatform(Exception):  # noqa: N818 - reads naturally at raise sites
    pass


class ChannelDirectory:
    """The channel of each platform: people hear back where they use the product."""

    def __init__(self, outbox: Outbox) -> None:
        self._by_platform: dict[str, Channel] = {
            "facebook": FacebookInApp(outbox),
            "instagram": InstagramDirect(outbox),
            "whatsapp": WhatsAppTemplate(outbox),
            "horizon": HorizonHeadset(outbox),
        }

    def for_platform(self, platform: str) -> Channel:
        try:
            return self._by_platform[platform]
        except KeyError:
            raise UnknownPlatform(f"no notification channel for platform {platform!r}") from None
