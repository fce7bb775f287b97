"""The retry scheduler: reads the retry topic and runs each record when it is due.

Due times on the retry topic are not in offset order (a 5-second retry can follow an overnight
quiet-hours deferral), so waiting for the head of a partition would block everything behind it.
Instead every record read is held in memory until its due time while reading goes on; records run
(a few at once, never two of one appeal at a time) as they fall due. Per partition, the committed
offset is the lowest record not yet finished, so a restart re-reads what was still waiting (and,
harmlessly, some finished records after it: handling is idempotent, a delivered notification is
never sent again). Beyond ``max_waiting`` held records, reading pauses (backpressure); the
consumer keeps polling so the group never evicts it.

Work follows what is due, not what is held: reading runs in its own task (a fetch waits at the
broker for records), and the scheduler sleeps until the next record falls due (checking the
clock at least every tick while something waits), a running record finishes, records arrive or
``stop`` is called. Idle, it wakes for nothing. Launching takes the earliest due records off a
heap; a due record whose appeal is busy is parked until that appeal's record finishes; commit
positions move per finished record (:class:`PartitionProgress`), never by scanning what waits.

It is its own consumer group, separate from the lifecycle consumer: waiting retries never hold up
new lifecycle events. A record scheduled by another deployment's group is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
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
    FETCH_MAX_WAIT_MS,
    InboundMessage,
    RetryPolicy,
    mark_failed,
    processing_span,
)
from appeals_runtime.kafka.in_flight import PartitionProgress
from appeals_runtime.kafka.producer import EventProducer
from services.notifications.metrics import GAUGES
from services.notifications.retries import PendingAttempt

log = logging.getLogger(__name__)

# How long one fetch waits at the broker for new records (the reader's only wake-up while
# idle); also how soon a paused topic is resumed once held records ran.
_READ_WAIT_MS = 1000
# Finished records are committed at most this often while records keep finishing.
_COMMIT_INTERVAL_S = 0.2

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
        # Set by whatever gives the scheduler work: records read, a record finished, stop.
        self._wake = asyncio.Event()
        self._heap: list[_Held] = []
        self._seq = itertools.count()
        # Due records whose appeal has a record running: they go when it finishes.
        self._parked: dict[str | None, list[_Held]] = {}
        self._parked_count = 0
        self._running: dict[asyncio.Task[None], _Held] = {}
        self._busy: set[str | None] = set()
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        # Commit positions that moved since the last commit.
        self._to_commit: dict[TopicPartition, int] = {}
        self._last_commit = 0.0

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=self._group_id,
            client_id=f"{self.name}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        consumer.subscribe(topics=[topics.NOTIFICATION_RETRIES.name], listener=_Rebalance(self))
        self._consumer = consumer
        await consumer.start()
        self.started.set()
        log.info("retry scheduler started", extra={"group": self._group_id})
        reader = asyncio.create_task(self._read(consumer), name=f"{self.name} reader")
        # A reader that fails wakes the scheduler, which then stops with its error.
        reader.add_done_callback(lambda _: self._wake.set())
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                self._launch_due()
                await self._commit()
                self._update_gauges(consumer)
                if reader.done():
                    reader.result()  # the reader failed: stop with its error
                    break
                # Sleep until there is something to do: no polling while idle.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._wait_s())
            if self._running:
                await asyncio.wait(list(self._running))
            await self._commit(at_once=True)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await consumer.stop()
            self._consumer = None
            log.info("retry scheduler stopped", extra={"group": self._group_id})

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        """Read the retry topic as records come and hold each until due; beyond
        ``max_waiting`` held records, pause the partitions (polling goes on, so the group keeps
        this member). A fetch waits at the broker for records: nothing spins while idle."""
        while not self._stopping.is_set():
            assigned = consumer.assignment()
            if self._waiting() >= self._max_waiting:
                consumer.pause(*assigned)
            else:
                consumer.resume(*assigned)
            batches = await consumer.getmany(timeout_ms=_READ_WAIT_MS, max_records=500)
            assigned = consumer.assignment()
            for tp, records in batches.items():
                if tp not in assigned:
                    continue  # revoked meanwhile: its new owner reads it from the commit
                for record in records:
                    await self._hold(tp, record)
            if batches:
                self._wake.set()

    def _waiting(self) -> int:
        return len(self._heap) + self._parked_count

    def _wait_s(self) -> float | None:
        """How long nothing can fall due: until the next due record, but no longer than a
        tick (the clock is checked, not trusted to run evenly), or until a commit is due.
        None (until woken) when nothing waits for a due time, or every slot is taken."""
        waits: list[float] = []
        if self._heap and len(self._running) < self._concurrency:
            until_due = self._heap[0].due_ts - self._clock().timestamp()
            waits.append(max(0.0, min(self._tick_s, until_due)))
        if self._to_commit:
            waits.append(max(0.0, self._last_commit + _COMMIT_INTERVAL_S - time.monotonic()))
        return min(waits) if waits else None

    async def _hold(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        progress = self._progress.setdefault(tp, PartitionProgress())
        try:
            progress.started(record.offset)
        except ValueError:
            return  # read before (a fetch repeated across a rebalance): already held
        headers = h.as_dict(record.headers)
        try:
            pending = PendingAttempt.from_headers(headers)
            message = _decode(record, headers)
        except InvalidMessage as error:
            if await self._dead_letter(record, error):
                self._finished(tp, record.offset)
            return
        if pending.group != self._owner_group:
            self._finished(tp, record.offset)
            return  # another deployment's retry: it schedules and runs it itself
        held = _Held(pending.due_at.timestamp(), next(self._seq), tp, record, message, pending)
        heapq.heappush(self._heap, held)

    def _launch_due(self) -> None:
        """Start what is due, earliest first, while slots are free; never two records of one
        appeal at once (a due record of a busy appeal is parked until it is free)."""
        now = self._clock().timestamp()
        while self._heap and self._heap[0].due_ts <= now and len(self._running) < self._concurrency:
            held = heapq.heappop(self._heap)
            key = held.message.key
            if key in self._busy:
                self._parked.setdefault(key, []).append(held)
                self._parked_count += 1
                continue
            self._busy.add(key)
            task = asyncio.create_task(self._run_one(held), name=f"retry {held.message.offset}")
            self._running[task] = held
            task.add_done_callback(self._ran)

    def _ran(self, task: asyncio.Task[None]) -> None:
        held = self._running.pop(task)
        key = held.message.key
        self._busy.discard(key)
        # The appeal is free: its parked records are due (their due times are past).
        for parked in self._parked.pop(key, []):
            self._parked_count -= 1
            heapq.heappush(self._heap, parked)
        self._wake.set()

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
        self._finished(held.tp, held.message.offset)

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

    def _finished(self, tp: TopicPartition, offset: int) -> None:
        progress = self._progress.get(tp)
        if progress is None:
            return  # the partition was revoked meanwhile
        moved = progress.finished(offset)
        if moved is not None:
            self._to_commit[tp] = moved

    async def _commit(
        self, only: set[TopicPartition] | None = None, *, at_once: bool = False
    ) -> None:
        """Commit the positions that moved: each partition's lowest record not yet finished.
        At most every ``_COMMIT_INTERVAL_S`` (a crash repeats at most that much, harmlessly),
        unless ``at_once`` or ``only`` (a rebalance)."""
        consumer = self._consumer
        if consumer is None or not self._to_commit:
            return
        throttled = time.monotonic() - self._last_commit < _COMMIT_INTERVAL_S
        if only is None and not at_once and throttled:
            return
        offsets = {
            tp: OffsetAndMetadata(position, "")
            for tp, position in self._to_commit.items()
            if only is None or tp in only
        }
        if not offsets:
            return
        self._last_commit = time.monotonic()
        try:
            await consumer.commit(offsets)
        except Exception as error:  # the partition moved: its new owner re-reads from the last
            log.warning("retry commit failed", extra={"error": repr(error)})
            assigned = consumer.assignment()
            for tp in list(self._to_commit):
                if tp not in assigned:
                    del self._to_commit[tp]
            return
        for tp, meta in offsets.items():
            if self._to_commit.get(tp) == meta.offset:
                del self._to_commit[tp]

    async def _release(self, revoked: set[TopicPartition]) -> None:
        """Partitions taken away: commit what is finished, forget what waits (their new owner
        re-reads it from the committed offset)."""
        await self._commit(only=revoked)
        self._heap = [held for held in self._heap if held.tp not in revoked]
        heapq.heapify(self._heap)
        for key in list(self._parked):
            kept = [held for held in self._parked[key] if held.tp not in revoked]
            self._parked_count -= len(self._parked[key]) - len(kept)
            if kept:
                self._parked[key] = kept
            else:
                del self._parked[key]
        for tp in revoked:
            self._progress.pop(tp, None)
            self._to_commit.pop(tp, None)

    def _update_gauges(self, consumer: AIOKafkaConsumer) -> None:
        GAUGES.retry_waiting = self._waiting()
        backlog = 0
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                continue
            progress = self._progress.get(tp)
            position = progress.position if progress is not None else None
            backlog += max(0, end - (end if position is None else position))
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
