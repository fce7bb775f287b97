"""The one registry of Kafka topics: names, keys, payload types and dead-letter queues.

No topic name is spelled anywhere else in the code. Every appeal event is keyed by appeal id so
one appeal's events stay in order on one partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from appeals import platforms
from appeals.v1 import chat_pb2, commands_pb2, events_pb2, intake_pb2

PayloadT = TypeVar("PayloadT", bound=Message)

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topic(Generic[PayloadT]):
    """A topic and its contract: what is on it, how it is keyed, where poison goes."""

    name: str
    payload_type: type[PayloadT]
    key: Callable[[PayloadT], str]
    # What the key is, for people reading the registry and the docs.
    key_name: str
    description: str

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX

    def decode(self, raw: bytes) -> PayloadT:
        message = self.payload_type()
        message.ParseFromString(raw)
        return message


def _appeal_event_key(event: events_pb2.AppealEvent) -> str:
    return event.appeal_id


def _request_key(request: intake_pb2.AppealRequest) -> str:
    return request.request_id


def _outcome_key(outcome: intake_pb2.AppealRequestOutcome) -> str:
    return outcome.request_id


def _restore_key(command: commands_pb2.RestoreCommand) -> str:
    return command.appeal_id


def _restore_result_key(result: commands_pb2.RestoreResult) -> str:
    return result.appeal_id


APPEAL_LIFECYCLE = Topic(
    name="appeals.lifecycle.v1",
    payload_type=events_pb2.AppealEvent,
    key=_appeal_event_key,
    key_name="appeal_id",
    description="Every appeal lifecycle event (submitted, routed, claimed, decided, notified...).",
)

APPEAL_REQUESTS = Topic(
    name="appeals.requests.v1",
    payload_type=intake_pb2.AppealRequest,
    key=_request_key,
    key_name="request_id",
    description="Appeals submitted by product surfaces as Kafka events.",
)

APPEAL_REQUEST_OUTCOMES = Topic(
    name="appeals.request-outcomes.v1",
    payload_type=intake_pb2.AppealRequestOutcome,
    key=_outcome_key,
    key_name="request_id",
    description="Intake's answer to each request event: accepted with an appeal id, or rejected.",
)


def _chat_key(event: chat_pb2.ChatEvent) -> str:
    return event.chat_id


HELP_CHATS = Topic(
    name="help.chats.v1",
    payload_type=chat_pb2.ChatEvent,
    key=_chat_key,
    key_name="chat_id",
    description=(
        "Live-help chats: requested, agent joined, first answer, handed over, closed. Produced "
        "by the help service only; never the text of a chat."
    ),
)

PLATFORM_NAMES: dict[int, str] = {p.value: p.name for p in platforms.PLATFORMS}

# One restore-commands topic per platform, so each platform's consumers (and ACLs) see only theirs.
RESTORE_COMMANDS: dict[int, Topic[commands_pb2.RestoreCommand]] = {
    platform: Topic(
        name=f"appeals.restore-commands.{name}.v1",
        payload_type=commands_pb2.RestoreCommand,
        key=_restore_key,
        key_name="appeal_id",
        description=f"Restore commands for {name}: content or accounts an overturn gives back.",
    )
    for platform, name in PLATFORM_NAMES.items()
}

RESTORE_RESULTS = Topic(
    name="appeals.restore-results.v1",
    payload_type=commands_pb2.RestoreResult,
    key=_restore_result_key,
    key_name="appeal_id",
    description="Platforms' reports that a restore command was carried out (or could not be).",
)

NOTIFICATION_RETRIES = Topic(
    name="appeals.notifications.retry.v1",
    payload_type=events_pb2.AppealEvent,
    key=_appeal_event_key,
    key_name="appeal_id",
    description=(
        "Notifications waiting for another attempt (transient channel failure) or for the "
        "person's quiet hours or daily limit: the lifecycle event they are about, with the due "
        "time, attempt and channel in headers. Its DLQ holds attempts that failed for good."
    ),
)

REGISTRY: tuple[Topic[Any], ...] = (
    APPEAL_LIFECYCLE,
    APPEAL_REQUESTS,
    APPEAL_REQUEST_OUTCOMES,
    *RESTORE_COMMANDS.values(),
    RESTORE_RESULTS,
    NOTIFICATION_RETRIES,
    HELP_CHATS,
)


def restore_commands_topic(platform: int) -> Topic[commands_pb2.RestoreCommand]:
    try:
        return RESTORE_COMMANDS[platform]
    except KeyError:
        raise ValueError(f"no restore-commands topic for platform {platform}") from None


def all_topic_names() -> Iterator[str]:
    """Every topic the pipeline needs to exist, dead-letter queues included."""
    for topic in REGISTRY:
        yield topic.name
        yield topic.dlq
