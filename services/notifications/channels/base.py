"""The one interface every channel adapter implements, and how a send can fail.

An adapter does three separate things: ``address`` says where this person is on the channel
(None: not reachable here), ``render`` shapes the message as the provider's API expects it (pure),
and ``send`` delivers it, raising :class:`TransientFailure` when trying again later may work and
:class:`PermanentFailure` when it never will on this channel (the next channel is tried then).

Sends are at-least-once on the wire: a crash between a provider's acknowledgement and our outbox
record repeats the send. Every send therefore carries ``Outgoing.delivery_id``, stable per
(appeal, event, channel), as the provider's idempotency key (HTTP ``Idempotency-Key``, email
``Message-ID``, webhook ``X-Appeals-Delivery``) so the receiving side can drop the repeat.
"""

from __future__ import annotations

from typing import Protocol

from services.notifications.model import Outgoing, ProviderPayload, Recipient, RenderedMessage


class ChannelFailure(Exception):  # noqa: N818 - a failure outcome, raised and counted
    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # The provider's own "not before" (HTTP Retry-After); a floor for the next backoff.
        self.retry_after_s = retry_after_s


class TransientFailure(ChannelFailure):
    """The provider is down, slow or rate-limiting: the same send may work later."""


class PermanentFailure(ChannelFailure):
    """This channel cannot reach this person (unknown number, refused address...)."""


class Channel(Protocol):
    @property
    def name(self) -> str:
        """The channel's name in deliveries, events and metrics, e.g. ``whatsapp_template``."""
        ...

    def address(self, recipient: Recipient) -> str | None:
        """Where ``recipient`` is on this channel, or None when this channel cannot reach them."""
        ...

    def render(
        self, recipient: Recipient, message: RenderedMessage, *, address: str, delivery_id: str
    ) -> ProviderPayload:
        """The provider-shaped request for ``message``; no I/O."""
        ...

    async def send(self, outgoing: Outgoing) -> None:
        """Deliver, or raise :class:`TransientFailure` / :class:`PermanentFailure`."""
        ...
