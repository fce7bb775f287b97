"""What the audit log records about each kind of message. Pure translation from the contracts.

A message the log cannot attribute (no id, no appeal, no time) violates its contract: it raises
:class:`InvalidMessage` and goes to the topic's DLQ instead of entering the tree half-empty,
because an entry can never be corrected once it is hashed in.

Besides the appeals' own events the log records its own reads (``access``) and erasures, so who
looked at what, and whose data was shredded, is as tamper-evident as the appeals themselves.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appeals import events, vocabulary
from appeals.v1 import chat_pb2, commands_pb2, events_pb2
from appeals_runtime.errors import InvalidMessage
from services.audit.log.entries import NO_APPEAL, LoggedEvent
from services.audit.privacy import legacy, sealing

# The type of a restore command in trails; lifecycle events use their payload's name.
RESTORE_REQUESTED = "restore_requested"
ACCESS = "access"
ERASURE = "erasure"
ACCESS_SCHEMA = "appeals.audit.AccessRecord/v1"
ERASURE_SCHEMA = "appeals.audit.Erasure/v1"
AUDIT_TOPIC = ""  # records the log writes about itself arrive on no topic


@dataclass(frozen=True)
class Recorded:
    """An event ready to log, and the personal data still to seal for ``subject``."""

    event: LoggedEvent
    personal: bytes | None = None
    subject: str | None = None


# The log keeps every event, whatever it says: nothing is ignored (a payload this build does
# not know is refused with a reason, see from_lifecycle_event).
EVENTS = events.EventHandling("audit", handled=frozenset(events.EVENT_TYPES), ignored=frozenset())


def from_lifecycle_event(
    event: events_pb2.AppealEvent, *, topic: str, secrets: sealing.Secrets
) -> Recorded:
    _require(event.event_id, "event_id")
    _require(event.appeal_id, "appeal_id")
    if not event.HasField("occurred_at"):
        raise InvalidMessage("event has no occurred_at", field="occurred_at")
    event_type = events.event_type(event)
    if event_type not in events.EVENT_TYPES:
        raise InvalidMessage("event carries no payload", field="payload")
    separated = sealing.separate_personal(event, secrets)
    event = separated.redacted
    logged = LoggedEvent(
        event_id=event.event_id,
        appeal_id=event.appeal_id,
        type=event_type,
        schema=event.schema,
        producer=event.producer,
        topic=topic,
        occurred_at=events.occurred_at(event),
        payload=event.SerializeToString(deterministic=True),
    )
    return Recorded(logged, separated.personal, separated.subject)


def from_restore_command(
    command: commands_pb2.RestoreCommand, *, topic: str, producer: str
) -> Recorded:
    """A restore command has no envelope; its command id is its event id and the producer
    comes from the record's header."""
    _require(command.command_id, "command_id")
    _require(command.appeal_id, "appeal_id")
    if not command.HasField("issued_at"):
        raise InvalidMessage("restore command has no issued_at", field="issued_at")
    return Recorded(
        LoggedEvent(
            event_id=command.command_id,
            appeal_id=command.appeal_id,
            type=RESTORE_REQUESTED,
            schema=command.DESCRIPTOR.full_name,
            producer=producer,
            topic=topic,
            occurred_at=command.issued_at.ToDatetime(tzinfo=UTC),
            payload=command.SerializeToString(deterministic=True),
        )
    )


# A live-help chat's events: chat_requested, chat_agent_joined, chat_first_answer,
# chat_handed_over, chat_closed. They are filed under the chat's appeal (so an appeal's trail
# shows the chat that led to its decision) or, for feature help, under "chat:<chat id>".
CHAT_EVENT_PREFIX = "chat_"
CHAT_SUBJECT_PREFIX = "chat:"


def chat_event_type(kind: chat_pb2.ChatEventKind.ValueType) -> str:
    name = chat_pb2.ChatEventKind.Name(kind).removeprefix("CHAT_EVENT_KIND_").lower()
    return CHAT_EVENT_PREFIX + name


def from_chat_event(event: chat_pb2.ChatEvent, *, topic: str, producer: str) -> Recorded:
    """A chat's event as the help service published it. The contract keeps a chat's text out
    of its events, so the whole payload is logged as it came (ids, times, the agent, the
    resolution code) and nothing needs sealing."""
    _require(event.event_id, "event_id")
    _require(event.chat_id, "chat_id")
    if not event.HasField("occurred_at"):
        raise InvalidMessage("chat event has no occurred_at", field="occurred_at")
    if event.kind not in chat_pb2.ChatEventKind.values() or not event.kind:
        raise InvalidMessage(f"unknown chat event kind {event.kind}", field="kind")
    return Recorded(
        LoggedEvent(
            event_id=event.event_id,
            appeal_id=event.appeal_id or CHAT_SUBJECT_PREFIX + event.chat_id,
            type=chat_event_type(event.kind),
            schema=event.DESCRIPTOR.full_name,
            producer=producer,
            topic=topic,
            occurred_at=event.occurred_at.ToDatetime(tzinfo=UTC),
            payload=event.SerializeToString(deterministic=True),
        )
    )


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def access_record(
    *, reader: str, role: str, action: str, target: str, at: datetime, **details: Any
) -> LoggedEvent:
    """A read of the audit log (or an action on it), logged before it is answered."""
    return LoggedEvent(
        event_id=str(uuid.uuid4()),
        appeal_id=NO_APPEAL,
        type=ACCESS,
        schema=ACCESS_SCHEMA,
        producer=reader,
        topic=AUDIT_TOPIC,
        occurred_at=at,
        payload=_json(
            {"reader": reader, "role": role, "action": action, "target": target, **details}
        ),
    )


def erasure_record(*, subject: str, requested_by: str, at: datetime) -> LoggedEvent:
    """A person's data key was shredded: the log says so, naming only the pseudonym."""
    return LoggedEvent(
        event_id=str(uuid.uuid4()),
        appeal_id=NO_APPEAL,
        type=ERASURE,
        schema=ERASURE_SCHEMA,
        producer=requested_by,
        topic=AUDIT_TOPIC,
        occurred_at=at,
        payload=_json({"subject": subject, "requested_by": requested_by}),
    )


@dataclass(frozen=True)
class IndexFacts:
    """What an event tells the query index about its appeal (None: nothing new)."""

    platform: str | None = None
    queue: str | None = None
    outcome: str | None = None
    submitted_at: datetime | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True)
class AppealSummary:
    """What the log has said about an appeal up to one of its entries (for ops queries)."""

    first_index: int
    platform: str | None = None
    queues: tuple[str, ...] = ()
    outcome: str | None = None
    submitted_at: datetime | None = None
    decided_at: datetime | None = None

    def then(self, facts: IndexFacts, index: int) -> AppealSummary:
        """This summary after one more entry."""
        queues = self.queues
        if facts.queue and facts.queue not in queues:
            queues = (*queues, facts.queue)
        return AppealSummary(
            first_index=min(self.first_index, index),
            platform=facts.platform or self.platform,
            queues=queues,
            outcome=facts.outcome or self.outcome,
            submitted_at=facts.submitted_at or self.submitted_at,
            decided_at=facts.decided_at or self.decided_at,
        )

    @classmethod
    def starting(cls, facts: IndexFacts, index: int) -> AppealSummary:
        return cls(first_index=index).then(facts, index)


def index_facts(event: events_pb2.AppealEvent) -> IndexFacts:
    reader = _FACTS.get(events.event_type(event))
    return IndexFacts() if reader is None else reader(event)


def _submitted_facts(event: events_pb2.AppealEvent) -> IndexFacts:
    platform = _platform(legacy.facts_of(event.submitted).platform)
    return IndexFacts(platform=platform, submitted_at=events.occurred_at(event))


def _decided_facts(event: events_pb2.AppealEvent) -> IndexFacts:
    return IndexFacts(
        platform=_platform(event.decided.platform),
        outcome=vocabulary.outcome_name(event.decided.outcome),
        decided_at=events.occurred_at(event),
    )


_FACTS: dict[str, Callable[[events_pb2.AppealEvent], IndexFacts]] = {
    "submitted": _submitted_facts,
    "decided": _decided_facts,
    "routed": lambda e: IndexFacts(platform=_platform(e.routed.platform), queue=e.routed.queue),
    "claimed": lambda e: IndexFacts(queue=e.claimed.queue or None),
    "transferred": lambda e: IndexFacts(queue=e.transferred.to_queue or None),
    "escalated": lambda e: IndexFacts(queue=e.escalated.to_queue or None),
}


_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def trace_id(traceparent: bytes | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header value; None when absent or malformed (an
    unusable header never stops an event from being logged: the trace is a navigation aid)."""
    if not traceparent:
        return None
    found = _TRACEPARENT.match(traceparent.decode("ascii", errors="replace").strip())
    if found is None or found.group(1) == "ff" or set(found.group(2)) == {"0"}:
        return None
    return found.group(2)


def _platform(value: int) -> str | None:
    name = vocabulary.platform_name(value)
    return None if name == "unspecified" else name


def _require(value: str, field: str) -> None:
    if not value:
        raise InvalidMessage(f"{field} is empty", field=field)
