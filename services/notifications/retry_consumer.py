"""The retry scheduler: reads the retry topic and runs each record when it is due.

Due times on the retry topic are not in offset order (a 5-second retry can follow an overnight
quiet-hours deferral), so waiting for the head of a partition would block everything behind it.
Instead every record read is held in memory until its due time while reading goes on; records run
(a few at once, never two of one appeal at a time) as they fall due. Per partition, the committed
offset is the lowest record not yet finished, so a restart re-reads what was still waiting (and,
harmlessly, some finished records after it: handling is idempotent, a delivered notification is
never sent again). Beyond ``max_waiting`` held records, reading pauses (backpressure); the
consumer keeps polling so the group never evicts it.

It is its own consumer group, separate from the lifecycle consumer: waiting retries never hold up
new lifecycle events. A record scheduled by another deployment's group is skipped.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from google.protobuf.message import DecodeError

from appeals.v1 import events_pb2
from appeals_runtime import topics
from appeals_runtime.errors import InvalidMessage, TransientError
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import (
    InboundMessage,
    RetryPolicy,
    mark_failed,
    processing_span,
)
from appeals_runtime.kafka.producer import EventProducer
from services.notifications.metrics import GAUGES
from services.notifications.retries import PendingAttempt

log = logging.getLogger(__name__)

RetryHandler = Callable[[InboundMessage[events_pb2.AppealEvent], PendingAttempt], Awaitable[None]]


@dataclass(order=True)
class _Held:
    due_ts: float
    seq: int
    tp: TopicPartition = field(compare=False)
    record: ConsumerRecord[bytes, bytes] = field(compare=False)
    message: InboundMessage[events_pb2.AppealEvent] = field(compare=False)
    pending: PendingAttempt = field(compare=False)
    # Failures of the handler itself (store or broker down), not of a channel.
    failures: int = field(default=0, compare=False)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, scheduler: RetryScheduler) -> None:
        self._scheduler = scheduler

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._scheduler._release(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("retry partitions assigned", extra={"partitions": [str(tp) for tp in assigned]})


class RetryScheduler:
    """A component: ``run`` until ``stop``."""

    def __init__(
        self,
        *,
        name: str,
        bootstrap_servers: str,
        group_id: str,
        owner_group: str,
        handler: RetryHandler,
        producer: EventProducer,
        clock: Callable[[], datetime],
        tick_s: float = 1.0,
        concurrency: int = 8,
        max_waiting: int = 10_000,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self._bootstrap_servers = bootstrap_servers
        self._group_id = group_id
        # Records scheduled by this group are ours; others belong to another deployment.
        self._owner_group = owner_group
        self._handler = handler
        self._producer = producer
        self._clock = clock
        self._tick_s = tick_s
        self._concurrency = concurrency
        self._max_waiting = max_waiting
        self._retry = retry or RetryPolicy()
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._heap: list[_Held] = []
        self._seq = itertools.count()
        self._unfinished: dict[TopicPartition, set[int]] = {}
        self._read_up_to: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._running: dict[asyncio.Task[None], _Held] = {}
        # Due records wait for running ones: poll at tick pace rather than spin.
        self._blocked = False

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=self._group_id,
            client_id=f"{self.name}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        consumer.subscribe(topics=[topics.NOTIFICATION_RETRIES.name], listener=_Rebalance(self))
        self._consumer = consumer
        await consumer.start()
        self.started.set()
        log.info("retry scheduler started", extra={"group": self._group_id})
        try:
            while not self._stopping.is_set():
                await self._read(consumer)
                self._launch_due()
                await self._commit()
                self._update_gauges(consumer)
                # Polls can return at once without yielding: let running records progress.
                await asyncio.sleep(0)
            if self._running:
                await asyncio.wait(list(self._running))
            await self._commit()
        finally:
            await consumer.stop()
            self._consumer = None
            log.info("retry scheduler stopped", extra={"group": self._group_id})

    async def stop(self) -> None:
        self._stopping.set()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        full = len(self._heap) >= self._max_waiting
        assigned = consumer.assignment()
        if full:
            consumer.pause(*assigned)
        else:
            consumer.resume(*assigned)
        batches = await consumer.getmany(timeout_ms=int(self._wait_s() * 1000), max_records=500)
        for tp, records in batches.items():
            for record in records:
                await self._hold(tp, record)

    def _wait_s(self) -> float:
        """Poll no longer than a tick, nor past the next due record; a full tick when what is
        due must wait for a running record (its appeal is busy, or all slots are taken)."""
        if not self._heap or self._blocked:
            return self._tick_s
        until_due = self._heap[0].due_ts - self._clock().timestamp()
        return max(0.0, min(self._tick_s, until_due))

    async def _hold(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        self._read_up_to[tp] = record.offset + 1
        unfinished = self._unfinished.setdefault(tp, set())
        unfinished.add(record.offset)
        headers = h.as_dict(record.headers)
        try:
            pending = PendingAttempt.from_headers(headers)
            message = _decode(record, headers)
        except InvalidMessage as error:
            if await self._dead_letter(record, error):
                unfinished.discard(record.offset)
            return
        if pending.group != self._owner_group:
            unfinished.discard(record.offset)
            return  # another deployment's retry: it schedules and runs it itself
        held = _Held(pending.due_at.timestamp(), next(self._seq), tp, record, message, pending)
        heapq.heappush(self._heap, held)

    def _launch_due(self) -> None:
        now = self._clock().timestamp()
        busy = {held.message.key for held in self._running.values()}
        postponed: list[_Held] = []
        while self._heap and self._heap[0].due_ts <= now:
            if len(self._running) >= self._concurrency:
                break
            held = heapq.heappop(self._heap)
            if held.message.key in busy:
                postponed.append(held)  # one appeal at a time: never two sends racing
                continue
            busy.add(held.message.key)
            task = asyncio.create_task(self._run_one(held), name=f"retry {held.message.offset}")
            self._running[task] = held
            task.add_done_callback(self._running.pop)
        for held in postponed:
            heapq.heappush(self._heap, held)
        self._blocked = bool(self._heap) and self._heap[0].due_ts <= now

    async def _run_one(self, held: _Held) -> None:
        message = held.message
        with processing_span(held.record, message.headers, group_id=self._group_id) as span:
            try:
                await self._handler(message, held.pending)
            except InvalidMessage as error:
                mark_failed(span, error)
                if not await self._dead_letter(held.record, error):
                    return
            except Exception as error:
                held.failures += 1
                if isinstance(error, TransientError) or (
                    held.failures < self._retry.max_attempts_unexpected
                ):
                    self._again_later(held, error)
                    return
                log.exception("retry handler failed; dead-lettering", extra=_where(message))
                mark_failed(span, error)
                if not await self._dead_letter(held.record, error):
                    return
        self._finish(held)

    def _again_later(self, held: _Held, error: Exception) -> None:
        if self._consumer is None or held.tp not in self._consumer.assignment():
            return  # the partition moved meanwhile: its new owner re-reads the record
        delay = self._retry.backoff(held.failures)
        log.warning(
            "retry handler failed; trying again",
            extra={**_where(held.message), "delay_s": round(delay, 3), "error": repr(error)},
        )
        due = self._clock() + timedelta(seconds=delay)
        held.due_ts = due.timestamp()
        heapq.heappush(self._heap, held)

    def _finish(self, held: _Held) -> None:
        unfinished = self._unfinished.get(held.tp)
        if unfinished is not None:
            unfinished.discard(held.message.offset)

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, read_up_to in self._read_up_to.items():
            if only is not None and tp not in only:
                continue
            unfinished = self._unfinished.get(tp)
            low = min(unfinished) if unfinished else read_up_to
            if self._committed.get(tp) != low:
                offsets[tp] = OffsetAndMetadata(low, "")
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except Exception as error:  # the partition moved: its new owner re-reads from the last
            log.warning("retry commit failed", extra={"error": repr(error)})
            return
        for tp, meta in offsets.items():
            self._committed[tp] = meta.offset

    async def _release(self, revoked: set[TopicPartition]) -> None:
        """Partitions taken away: commit what is finished, forget what waits (their new owner
        re-reads it from the committed offset)."""
        await self._commit(only=revoked)
        self._heap = [held for held in self._heap if held.tp not in revoked]
        heapq.heapify(self._heap)
        for tp in revoked:
            self._unfinished.pop(tp, None)
            self._read_up_to.pop(tp, None)
            self._committed.pop(tp, None)

    def _update_gauges(self, consumer: AIOKafkaConsumer) -> None:
        GAUGES.retry_waiting = len(self._heap)
        backlog = 0
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                continue
            unfinished = self._unfinished.get(tp)
            low = min(unfinished) if unfinished else self._read_up_to.get(tp, end)
            backlog += max(0, end - low)
        GAUGES.retry_backlog = backlog

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: Exception) -> bool:
        """A retry record that cannot be handled goes to the notifications DLQ, like the runner
        does it, and is finished: the records after it still run. False when shutdown came
        first: the record is then neither parked nor finished, and is re-read after restart."""
        reason = h.failure_reason(error)
        headers = h.dead_letter_headers(record, error, attempts=1, group_id=self._group_id)
        attempt = 0
        while True:
            try:
                await self._producer.publish_raw(
                    topics.NOTIFICATION_RETRIES.dlq, record.key, record.value, headers
                )
                break
            except TransientError:
                attempt += 1
                if self._stopping.is_set():
                    return False
                await asyncio.sleep(self._retry.backoff(attempt))
        log.error("retry record dead-lettered", extra={**_where(record), "reason": reason})
        return True


def _decode(
    record: ConsumerRecord[bytes, bytes], headers: dict[str, bytes]
) -> InboundMessage[events_pb2.AppealEvent]:
    if record.value is None:
        raise InvalidMessage("record has no value")
    try:
        event = topics.NOTIFICATION_RETRIES.decode(record.value)
    except DecodeError as error:
        raise InvalidMessage(f"payload is not a valid appeals.v1.AppealEvent: {error}") from error
    return InboundMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode(errors="replace") if record.key is not None else None,
        payload=event,
        headers=headers,
        timestamp_ms=record.timestamp,
    )


def _where(record: Any) -> dict[str, Any]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
