"""Which channels try to reach a person, in which order.

Order: the person's preferred channel (``Contact.preferred_channel``), then the channel of the
platform they appealed on, then the configured fallbacks (email by default). A channel is in the
plan only when it is configured and can address this person (email needs an address, WhatsApp a
WhatsApp id or phone number, a platform's own channel needs that platform's user id). The notifier
moves to the next channel only when one fails permanently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from appeals import platforms
from services.notifications.channels.base import Channel
from services.notifications.model import Recipient

# People (and surfaces) name channels by their platform too: "whatsapp" means its channel.
PREFERENCE_ALIASES = {**platforms.CHANNELS, "mail": "email"}


@dataclass(frozen=True)
class Route:
    """One step of a plan: a channel, the person's address on it and which address that is."""

    channel: Channel
    address: str
    # "user_id", "email" or "phone": what the delivery record names instead of the address.
    kind: str


def channel_plan(
    recipient: Recipient,
    channels: Mapping[str, Channel],
    *,
    platform_channels: Mapping[str, str],
    fallbacks: Sequence[str],
) -> list[Route]:
    preferred = recipient.contact.preferred_channel.strip().lower()
    names = [
        PREFERENCE_ALIASES.get(preferred, preferred),
        platform_channels.get(recipient.platform, ""),
        *fallbacks,
    ]
    plan: list[Route] = []
    for name in dict.fromkeys(name for name in names if name):
        channel = channels.get(name)
        address = channel.address(recipient) if channel is not None else None
        if channel is not None and address:
            plan.append(Route(channel, address, address_kind(recipient, address)))
    return plan


def address_kind(recipient: Recipient, address: str) -> str:
    if address == recipient.user_id:
        return "user_id"
    if address.lstrip("+") == recipient.contact.phone.lstrip("+"):
        return "phone"
    return "email"


class ChannelDirectory:
    """The configured channels and the order they are tried in."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        platform_channels: Mapping[str, str],
        fallbacks: Sequence[str] = ("email",),
    ) -> None:
        self._channels = {channel.name: channel for channel in channels}
        self._platform_channels = dict(platform_channels)
        self._fallbacks = tuple(fallbacks)

    def get(self, name: str) -> Channel | None:
        return self._channels.get(name)

    def reaching(self, platform: str, kind: str) -> Channel | None:
        """The configured channel that reaches an address of ``kind`` on ``platform``: the
        platform's own channel for its user ids, WhatsApp for a phone, email for an email."""
        name = {
            "user_id": self._platform_channels.get(platform, ""),
            "phone": platforms.CHANNELS.get("whatsapp", ""),
            "email": "email",
        }.get(kind, "")
        return self._channels.get(name)

    def plan(self, recipient: Recipient) -> list[Route]:
        return channel_plan(
            recipient,
            self._channels,
            platform_channels=self._platform_channels,
            fallbacks=self._fallbacks,
        )
