"""What notifications knows about an appeal and what it told the appellant. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# What a notification is about; the ``kind`` of the ``notified`` event.
NotificationKind = Literal[
    "received", "in_review", "info_requested", "escalated", "decided", "restored"
]
NOTIFICATION_KINDS: tuple[NotificationKind, ...] = (
    "received",
    "in_review",
    "info_requested",
    "escalated",
    "decided",
    "restored",
)
Outcome = Literal["upheld", "overturned", "partially_overturned"]
TextDirection = Literal["ltr", "rtl"]

# A provider-shaped request body (WhatsApp Cloud API message, Graph API notification, ...).
ProviderPayload = dict[str, Any]


@dataclass(frozen=True)
class Contact:
    """How to reach the person beyond their platform, as the appellant gave it (all optional)."""

    email: str = ""
    # E.164, e.g. "+4915112345678".
    phone: str = ""
    # A channel name the person prefers over their platform's, e.g. "email".
    preferred_channel: str = ""
    # IANA zone, e.g. "Europe/Berlin"; without it there are no quiet hours and dates are in UTC.
    time_zone: str = ""


@dataclass(frozen=True)
class Recipient:
    """The recipient profile of one appeal, taken from its submitted event.

    Later events do not repeat who appealed or in which language, so this is kept from the
    submitted event until a later message needs it. It holds no personal data: the event carries
    none. ``user_id`` and ``contact`` are filled in from intake at the moment a message is sent
    (:func:`services.notifications.inbound.addressed`) and never stored.
    """

    appeal_id: str
    submitted_event_id: str
    platform: str
    # The appellant's user id on the platform: empty in the stored profile, see above.
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
    # When the original decision was made (a fact in the statement of reasons), if known.
    decision_made_at: datetime | None = None
    # Who the person is across appeals (the intake pseudonym): daily limits count per person.
    person: str = ""
    contact: Contact = field(default_factory=Contact)

    @property
    def person_key(self) -> str:
        # Every submitted event names the person by intake's pseudonym; a profile without one
        # (none can be stored today) is limited per appeal, never keyed by the user id, which
        # is personal data and must not reach the store.
        return self.person or f"appeal:{self.appeal_id}"

    def redact(self, text: str) -> str:
        """``text`` (a provider's error, say) with this person's addresses replaced by what
        they are: failure reasons go into events, DLQ headers and logs, none of which may hold
        personal data. (Values shorter than three characters are left: no real address is.)"""
        for value, kind in (
            (self.user_id, "user_id"),
            (self.contact.email, "email"),
            (self.contact.phone.lstrip("+"), "phone"),
        ):
            if len(value) >= 3:
                text = text.replace(value, f"<{kind}>")
        return text


@dataclass(frozen=True)
class Told:
    """What the person who appealed was told about their appeal so far, as the store says."""

    # The event that tells (or told) them about each kind first: for once-per-appeal kinds the
    # one allowed to; for ``decided``, the first decision that reached them.
    firsts: Mapping[NotificationKind, str] = field(default_factory=dict)
    # The events they were notified about, in the order the notifications were recorded.
    timeline: tuple[str, ...] = ()

    @property
    def decision_delivered(self) -> bool:
        return "decided" in self.firsts


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision on an appeal, as the decided event states it."""

    appeal_id: str
    event_id: str
    outcome: Outcome
    rationale: str
    policy_cited: str
    decided_at: datetime
    # The facts and circumstances the reviewer established (DSA Art. 17(3)(b)), if stated.
    facts: str = ""
    # Set when a person decided an appeal about identical content and this decision was applied
    # from it automatically: the statement must say so (Art. 17(3)(c)).
    applied_from_appeal_id: str = ""


@dataclass(frozen=True)
class Notice:
    """One lifecycle event the appellant should hear about, before it is worded."""

    appeal_id: str
    about_event_id: str
    kind: NotificationKind
    occurred_at: datetime
    # Set for ``decided``.
    decision: Decision | None = None
    # Set for ``info_requested``: what the reviewer asks.
    question: str = ""
    # Set for ``escalated``: "senior", "legal", "oversight_board", ...
    escalation_target: str = ""


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
    direction: TextDirection = "ltr"


@dataclass(frozen=True)
class Outgoing:
    """One send on one channel: what goes out, to which address, under which idempotency key."""

    # Stable per (appeal, event, channel): providers and receivers deduplicate on it.
    delivery_id: str
    address: str
    message: RenderedMessage
    payload: ProviderPayload


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
    # Which of the person's addresses ``channel`` used: ``user_id``, ``email`` or ``phone``. The
    # address itself stays with intake; ``payload`` names it by this kind too.
    recipient: str
    subject: str
    body: str
    payload: ProviderPayload
    delivered_at: datetime
    delivery_id: str = ""
    person: str = ""
    # Attempts on the delivering channel, this one included.
    attempt: int = 1
