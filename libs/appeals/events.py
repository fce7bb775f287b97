"""Building and reading appeal lifecycle events.

Event ids are derived from what caused the event (``derived_event_id``), so a service that
crashes after publishing and handles the same input again publishes the *same* event id, which
every consumer deduplicates. Redelivery therefore never doubles an effect downstream.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message

from appeals.v1 import events_pb2

# Namespace for uuid5 event ids; fixed forever so derived ids stay stable across releases.
_EVENT_NAMESPACE = uuid.UUID("5b0f6c2e-5a8e-4d7e-9a43-1f3f0c6d7a11")

# Oneof field name -> the event type name used in trails, logs and notifications.
EVENT_TYPES = tuple(
    field.name for field in events_pb2.AppealEvent.DESCRIPTOR.oneofs_by_name["payload"].fields
)


@dataclass(frozen=True)
class EventHandling:
    """What one consumer of the lifecycle topic does with each event type: handles it, or
    ignores it on purpose. Every service declares one; a test checks it against
    :data:`EVENT_TYPES`, so a new event type fails the suite until every consumer has decided
    what it means for them."""

    consumer: str
    handled: frozenset[str]
    ignored: frozenset[str]

    def ignores(self, event: events_pb2.AppealEvent) -> bool:
        """Whether this consumer ignores ``event`` on purpose (its runner may skip it)."""
        return event_type(event) in self.ignored

    def undecided(self) -> set[str]:
        """Event types this consumer neither handles nor ignores."""
        return set(EVENT_TYPES) - self.handled - self.ignored

    def contradictions(self) -> set[str]:
        """Names both handled and ignored, or no event type at all."""
        return set(self.handled & self.ignored) | set(self.handled | self.ignored) - set(
            EVENT_TYPES
        )


def derived_event_id(*parts: str) -> str:
    """A stable id for the event that ``parts`` (e.g. appeal id and step) uniquely cause."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, "\x1f".join(parts)))


def new_event(
    *,
    event_id: str,
    appeal_id: str,
    producer: str,
    causation_id: str = "",
    occurred_at: datetime | None = None,
    **payload: Message,
) -> events_pb2.AppealEvent:
    """An envelope around exactly one payload, e.g. ``new_event(..., routed=AppealRouted(...))``."""
    if len(payload) != 1:
        raise ValueError(f"an event carries exactly one payload, got {sorted(payload)}")
    ((field_name, message),) = payload.items()
    event = events_pb2.AppealEvent(
        event_id=event_id,
        appeal_id=appeal_id,
        causation_id=causation_id,
        producer=producer,
        schema=message.DESCRIPTOR.full_name,
    )
    getattr(event, field_name).CopyFrom(message)
    event.occurred_at.FromDatetime(occurred_at or datetime.now(UTC))
    return event


def event_type(event: events_pb2.AppealEvent) -> str:
    """``submitted``, ``routed``, ... or ``unknown`` for an event without a payload."""
    return event.WhichOneof("payload") or "unknown"


def occurred_at(event: events_pb2.AppealEvent) -> datetime:
    return event.occurred_at.ToDatetime(tzinfo=UTC)
