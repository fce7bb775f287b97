"""The retry topic's records and the notifications DLQ: what waits, until when, and what failed.

A retry record is the lifecycle event the notification is about, unchanged, on
``appeals.notifications.retry.v1`` (keyed by appeal id), with headers saying when it is due, which
channel to try and which attempt on it this is. Re-reading the event, rather than a rendered
message, keeps one code path for first attempts and retries and lets a fixed template or address
apply to what still waits.

Each record names the consumer group that scheduled it: several notifications deployments (or
test runs) sharing a broker each retry only their own work.

A permanently failed attempt goes to the retry topic's DLQ, again as the original event, with the
runner's ``dlq.*`` headers plus the channel and kind: ops can fix the cause (an address, a
template) and replay the record into the retry topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from appeals import topics
from appeals.v1 import events_pb2
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer

DUE_AT = "notifications.due-at"
ATTEMPT = "notifications.attempt"
CHANNEL = "notifications.channel"
REASON = "notifications.reason"
GROUP = "notifications.group"
KIND = "notifications.kind"


@dataclass(frozen=True)
class PendingAttempt:
    """A notification that waits: for ``channel`` ("" = the start of the person's plan), the
    ``attempt``-th try on it, not before ``due_at``."""

    channel: str
    attempt: int
    due_at: datetime
    reason: str
    group: str

    def headers(self) -> h.Headers:
        return [
            (DUE_AT, h.text(int(self.due_at.timestamp() * 1000))),
            (ATTEMPT, h.text(self.attempt)),
            (CHANNEL, h.text(self.channel)),
            (REASON, h.text(self.reason)),
            (GROUP, h.text(self.group)),
        ]

    @classmethod
    def from_headers(cls, headers: dict[str, bytes]) -> PendingAttempt:
        try:
            due_ms = int(headers[DUE_AT])
            attempt = int(headers[ATTEMPT])
        except (KeyError, ValueError) as error:
            raise InvalidMessage(
                f"retry record lacks a valid {DUE_AT} or {ATTEMPT} header", field="headers"
            ) from error
        if attempt < 1:
            raise InvalidMessage(f"{ATTEMPT} must be at least 1", field="headers")
        return cls(
            channel=headers.get(CHANNEL, b"").decode(errors="replace"),
            attempt=attempt,
            due_at=datetime.fromtimestamp(due_ms / 1000, UTC),
            reason=headers.get(REASON, b"").decode(errors="replace"),
            group=headers.get(GROUP, b"").decode(errors="replace"),
        )


@dataclass(frozen=True)
class Origin:
    """Where the work came from (lifecycle or retry topic), for the DLQ headers."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    group: str

    @classmethod
    def of(cls, message: InboundMessage[events_pb2.AppealEvent], group: str) -> Origin:
        return cls(message.topic, message.partition, message.offset, message.timestamp_ms, group)


class RetryQueue:
    """Publishes retry records and dead letters; the only writer of the retry topic."""

    def __init__(self, producer: EventProducer, *, group: str) -> None:
        self._producer = producer
        self.group = group

    def pending(
        self, *, channel: str, attempt: int, due_at: datetime, reason: str
    ) -> PendingAttempt:
        return PendingAttempt(channel, attempt, due_at, reason, self.group)

    async def schedule(self, event: events_pb2.AppealEvent, pending: PendingAttempt) -> None:
        await self._producer.publish(topics.NOTIFICATION_RETRIES, event, headers=pending.headers())

    async def dead_letter(
        self,
        event: events_pb2.AppealEvent,
        *,
        origin: Origin,
        channel: str,
        kind: str,
        attempts: int,
        error_type: str,
        reason: str,
    ) -> None:
        dlq_headers = {
            h.DLQ_ERROR_TYPE: h.text(error_type),
            h.DLQ_ERROR_MESSAGE: h.text(reason),
            h.DLQ_ATTEMPTS: h.text(attempts),
            h.DLQ_ORIGINAL_TOPIC: h.text(origin.topic),
            h.DLQ_ORIGINAL_PARTITION: h.text(origin.partition),
            h.DLQ_ORIGINAL_OFFSET: h.text(origin.offset),
            h.DLQ_ORIGINAL_TIMESTAMP: h.text(origin.timestamp_ms),
            h.DLQ_CONSUMER_GROUP: h.text(origin.group),
            h.DLQ_FAILED_AT: h.text(int(time.time() * 1000)),
            CHANNEL: h.text(channel),
            KIND: h.text(kind),
            GROUP: h.text(self.group),
        }
        await self._producer.publish_raw(
            topics.NOTIFICATION_RETRIES.dlq,
            event.appeal_id.encode(),
            event.SerializeToString(),
            [(h.SCHEMA, event.DESCRIPTOR.full_name.encode()), *dlq_headers.items()],
        )
