"""What notifications knows about an appeal and what it told the appellant. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

# What a notification is about; the ``kind`` of the ``notified`` event.
NotificationKind = Literal["received", "decided"]
Outcome = Literal["upheld", "overturned"]

# A provider-shaped request body (WhatsApp Cloud API message, Graph API notification, ...).
ProviderPayload = dict[str, Any]


@dataclass(frozen=True)
class Recipient:
    """The recipient profile of one appeal, taken from its submitted event.

    Decision events do not repeat who appealed or in which language, so this is kept from the
    submitted event until the decision needs it.
    """

    appeal_id: str
    submitted_event_id: str
    platform: str
    user_id: str
    # The BCP 47 tag the surface sent, as sent; messages resolve it to a template locale.
    locale: str
    country: str
    subject_kind: str
    subject_id: str
    decision_policy: str
    decision_action: str
    decision_automated: bool
    received_at: datetime


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision on an appeal, as the decided event states it."""

    appeal_id: str
    event_id: str
    outcome: Outcome
    rationale: str
    policy_cited: str
    decided_at: datetime


@dataclass(frozen=True)
class RenderedMessage:
    """A message in the appellant's language, before any channel shapes it."""

    # Template that produced it, e.g. ``decided_upheld``; providers with pre-approved templates
    # (WhatsApp) name theirs after it.
    template: str
    # The template locale actually used (``de`` for a ``de-AT`` appellant), not the tag asked for.
    locale: str
    subject: str
    body: str
    # Short single-line values (reference, date, policy, ...) for providers that fill
    # placeholders of an approved template instead of taking free text.
    parameters: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Delivery:
    """One notification as recorded in the outbox: the effect and its dedup key in one document."""

    appeal_id: str
    about_event_id: str
    kind: NotificationKind
    template: str
    channel: str
    platform: str
    locale: str
    recipient: str
    subject: str
    body: str
    payload: ProviderPayload
    delivered_at: datetime
