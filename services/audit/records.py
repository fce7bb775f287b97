"""What the audit log records about each kind of message. Pure translation from the contracts.

A message the log cannot attribute (no id, no appeal, no time) violates its contract: it raises
:class:`InvalidMessage` and goes to the topic's DLQ instead of entering the chain half-empty,
because an entry can never be corrected once it is chained.
"""

from __future__ import annotations

from datetime import UTC

from appeals.v1 import commands_pb2, events_pb2
from appeals_runtime import events
from appeals_runtime.errors import InvalidMessage
from services.audit.chain import LoggedEvent

# The type of a restore command in trails; lifecycle events use their payload's name.
RESTORE_REQUESTED = "restore_requested"


def from_lifecycle_event(event: events_pb2.AppealEvent, *, topic: str) -> LoggedEvent:
    _require(event.event_id, "event_id")
    _require(event.appeal_id, "appeal_id")
    if not event.HasField("occurred_at"):
        raise InvalidMessage("event has no occurred_at", field="occurred_at")
    event_type = events.event_type(event)
    if event_type not in events.EVENT_TYPES:
        raise InvalidMessage("event carries no payload", field="payload")
    return LoggedEvent(
        event_id=event.event_id,
        appeal_id=event.appeal_id,
        type=event_type,
        schema=event.schema,
        producer=event.producer,
        topic=topic,
        occurred_at=events.occurred_at(event),
        payload=event.SerializeToString(deterministic=True),
    )


def from_restore_command(
    command: commands_pb2.RestoreCommand, *, topic: str, producer: str
) -> LoggedEvent:
    """A restore command has no envelope; its command id is its event id and the producer
    comes from the record's header."""
    _require(command.command_id, "command_id")
    _require(command.appeal_id, "appeal_id")
    if not command.HasField("issued_at"):
        raise InvalidMessage("restore command has no issued_at", field="issued_at")
    return LoggedEvent(
        event_id=command.command_id,
        appeal_id=command.appeal_id,
        type=RESTORE_REQUESTED,
        schema=command.DESCRIPTOR.full_name,
        producer=producer,
        topic=topic,
        occurred_at=command.issued_at.ToDatetime(tzinfo=UTC),
        payload=command.SerializeToString(deterministic=True),
    )


def _require(value: str, field: str) -> None:
    if not value:
        raise InvalidMessage(f"{field} is empty", field=field)
