"""The consumer runner: decode → validate → handle → commit, with DLQ and retries.

Guarantees, for every consumer in the pipeline:

* an offset is committed only after its message was fully handled (at-least-once delivery;
  handlers are idempotent, so a redelivery changes nothing);
* a message that cannot be decoded or violates its contract (:class:`InvalidMessage`) goes to
  ``<topic>.dlq`` with headers naming the error, the attempts and the original position, and
  the messages after it are still processed;
* a :class:`TransientError` (store or broker unavailable) is retried with exponential backoff and
  jitter until it succeeds; only that record's key waits meanwhile, and when too many records
  are in flight the partitions are paused (polling goes on, so the group keeps its members and
  nothing is dropped);
* any other exception is retried a few times (it may be a blip) and then dead-lettered, so a bug
  triggered by one message never blocks its partition forever;
* SIGTERM (via :meth:`ConsumerRunner.stop`) finishes the messages in hand and commits;
* dead letters are paced (``max_dead_letters_per_minute``): a deploy that fails every record
  leaves them on their topic, lagging and alerting, instead of emptying it into the DLQ;
* records the service ignores on purpose (``skip``: most of a shared topic's events, for most
  consumers) are finished when fetched, with no task, span or handler call; the committed
  offset still never passes a record before them that is in flight.

Delayed redelivery (``due_at``, a retry topic): each record waits in memory until its due time
and records of one key then run one at a time in the order they fall due, not in offset order;
waiting records count against ``max_in_flight`` (reading pauses beyond it), ``max_running``
bounds the handlers running at once.

Records are handled concurrently, up to ``max_in_flight`` at once: records of one key (one
appeal) one after another in offset order, records of different keys side by side, so one
consumer keeps up with the broker while each handler waits on the store. The committed offset of
a partition never passes a record still in flight (``appeals_runtime.kafka.in_flight``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from google.protobuf.message import DecodeError
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from appeals.topics import PayloadT, Topic
from appeals_runtime import metrics, tracing
from appeals_runtime.errors import InvalidMessage, TransientError
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.in_flight import DeadLetterPace, KeyChains, KeyLocks, PartitionProgress
from appeals_runtime.kafka.producer import EventProducer

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
_finished = metrics.counter(metrics.CONSUMER_MESSAGES)
_retries = metrics.counter(metrics.CONSUMER_RETRIES)
_dead_lettered = metrics.counter(metrics.DLQ_PUBLISHED)
_process_duration = metrics.histogram(metrics.MESSAGING_PROCESS_DURATION)

# How long the broker may hold a fetch that finds nothing new. A fetch is answered as soon as
# one record arrives, so this costs no latency; it only sets how often an idle consumer asks
# (Kafka's default, 500 ms, makes each idle consumer a couple of broker requests a second).
FETCH_MAX_WAIT_MS = 1000

# How long one poll waits for records: while idle, and while records are in flight.
IDLE_POLL_MS = 1000
BUSY_POLL_MS = 200

GROUP = "messaging.consumer.group.name"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"

# Runners of this process, for the consumer-lag gauge (weak: a finished runner disappears).
_running: weakref.WeakValueDictionary[int, ConsumerRunner] = weakref.WeakValueDictionary()


def _lag() -> Iterator[tuple[float, dict[str, str]]]:
    for runner in list(_running.values()):
        yield from runner.lag()


metrics.gauge(metrics.CONSUMER_LAG, _lag)


@dataclass(frozen=True)
class InboundMessage(Generic[PayloadT]):
    """A decoded message as a handler sees it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    payload: PayloadT
    headers: dict[str, bytes]
    timestamp_ms: int


Handler = Callable[[InboundMessage[Any]], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 10.0
    # Unexpected exceptions are tried this many times in all, then dead-lettered.
    max_attempts_unexpected: int = 4

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff (AWS architecture blog), attempt counted from 1."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


@dataclass
class _Attempts:
    count: int = 0
    last_error: BaseException | None = None


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._runner._hand_over(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": [str(tp) for tp in assigned]})


class _HeaderGetter(Getter[dict[str, bytes]]):
    """Reads W3C trace context from Kafka headers (bytes values)."""

    def get(self, carrier: dict[str, bytes], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value.decode(errors="replace")] if value is not None else None

    def keys(self, carrier: dict[str, bytes]) -> list[str]:
        return list(carrier)


@dataclass
class ConsumerRunner:
    """Runs one consumer group member over registry topics until :meth:`stop` is called."""

    name: str
    bootstrap_servers: str
    group_id: str
    topics: Sequence[Topic[Any]]
    handler: Handler
    producer: EventProducer
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_batch: int = 100
    # Records handled at once; beyond it the partitions are paused until half of them are done.
    max_in_flight: int = 200
    # How often handled offsets are committed while records keep coming (and at every
    # rebalance and stop): a crash redelivers at most this much, which handlers absorb. Each
    # commit is a request the broker writes to its offsets log.
    commit_interval_s: float = 1.0
    # After a poll that returned records, wait this long before the next one. The fetcher asks
    # the broker again for a partition only once its records were taken, so a short pause lets
    # records gather into one fetch instead of one fetch (a broker round trip, about a
    # millisecond of its CPU here) per record; it adds at most this much latency per hop.
    fetch_pacing_s: float = 0.02
    # Start from the beginning when a group has no committed offset: nothing is skipped.
    auto_offset_reset: str = "earliest"
    # Delayed redelivery: when set, a record is handled once ``clock()`` reaches the time this
    # returns for it (None: at once; InvalidMessage: dead-lettered), see the module docstring.
    due_at: Callable[[InboundMessage[Any]], datetime | None] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # How often a waiting record looks at the clock (checked, not trusted to run evenly).
    tick_s: float = 1.0
    # Handlers running at once (records waiting for their time do not count); None: no bound.
    max_running: int | None = None
    # Dead letters a minute beyond a burst of ``dead_letter_burst``; more wait their turn.
    max_dead_letters_per_minute: float = 600.0
    dead_letter_burst: int = 100
    # Records the handler would do nothing with (event types its service ignores on purpose):
    # finished when fetched, with no task, span or handler call. Every consumer of the lifecycle
    # topic reads every event, and most services ignore most of them (their own, notices).
    # A record that cannot be decoded is never skipped: it is dead-lettered with the reason.
    skip: Callable[[InboundMessage[Any]], bool] | None = None

    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # Commit position per partition, not yet committed.
    _handled: dict[TopicPartition, int] = field(default_factory=dict, init=False)
    _progress: dict[TopicPartition, PartitionProgress] = field(default_factory=dict, init=False)
    _tasks: dict[TopicPartition, set[asyncio.Task[bool]]] = field(default_factory=dict, init=False)
    # Partitions being handed over in a rebalance: their records stop retrying.
    _revoked: set[TopicPartition] = field(default_factory=set, init=False)
    _chains: KeyChains = field(default_factory=KeyChains, init=False)
    _in_flight: int = field(default=0, init=False)
    _room: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # Where newly assigned partitions start, before their first record (for the lag gauge).
    _positions: dict[TopicPartition, int] = field(default_factory=dict, init=False)
    _started: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # Delayed redelivery: records waiting for their time, per-key locks, running slots, and
    # per partition an event that ends its records' waits when it is handed over.
    _waiting: int = field(default=0, init=False)
    _key_locks: KeyLocks = field(default_factory=KeyLocks, init=False)
    _slots: asyncio.Semaphore | None = field(default=None, init=False)
    _leaving: dict[TopicPartition, asyncio.Event] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._topics_by_name = {topic.name: topic for topic in self.topics}
        self._room.set()
        if self.max_running is not None:
            self._slots = asyncio.Semaphore(self.max_running)
        self._dead_letter_pace = DeadLetterPace(
            self.max_dead_letters_per_minute, self.dead_letter_burst
        )

    @property
    def waiting(self) -> int:
        """Delayed records held until their time."""
        return self._waiting

    @property
    def started(self) -> asyncio.Event:
        """Set once the consumer joined the group (tests and readiness wait on it)."""
        return self._started

    def assignment_of(self, topic: str) -> tuple[frozenset[int], int]:
        """The partitions of ``topic`` this member owns now, and how many the topic has (both
        empty before the member joined the group)."""
        consumer = self._consumer
        if consumer is None:
            return frozenset(), 0
        owned = frozenset(tp.partition for tp in consumer.assignment() if tp.topic == topic)
        return owned, len(consumer.partitions_for_topic(topic) or ())

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.name}-consumer",
            enable_auto_commit=False,
            auto_offset_reset=self.auto_offset_reset,
            isolation_level="read_committed",
            max_poll_records=self.max_batch,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        consumer.subscribe(topics=list(self._topics_by_name), listener=_CommitOnRevoke(self))
        self._consumer = consumer
        _running[id(self)] = self
        await consumer.start()
        self._started.set()
        log.info(
            "consumer started", extra={"group": self.group_id, "topics": list(self._topics_by_name)}
        )
        last_commit = time.monotonic()
        try:
            while not self._stopping.is_set():
                await self._respect_room(consumer)
                # Idle, a poll waits long (records still end it at once); with records in
                # flight it returns often enough to commit what they finish.
                # (Delayed records waiting for their time are not work in hand.)
                busy = self._in_flight > self._waiting or bool(self._handled)
                batches = await consumer.getmany(
                    timeout_ms=BUSY_POLL_MS if busy else IDLE_POLL_MS, max_records=self.max_batch
                )
                assignment = consumer.assignment()
                for tp, records in batches.items():
                    if tp not in assignment or tp in self._revoked:
                        continue  # revoked meanwhile: the new owner takes it from the commit
                    for record in records:
                        self._dispatch(tp, record)
                if time.monotonic() - last_commit >= self.commit_interval_s or not batches:
                    await self._commit_handled()
                    last_commit = time.monotonic()
                await self._learn_positions(consumer)
                if batches and self.fetch_pacing_s:
                    await asyncio.sleep(self.fetch_pacing_s)
        finally:
            _running.pop(id(self), None)
            await self._finish_in_flight(set(self._tasks))
            await self._commit_handled()
            await consumer.stop()
            self._consumer = None
            log.info("consumer stopped", extra={"group": self.group_id})

    async def stop(self) -> None:
        self._stopping.set()
        for leaving in self._leaving.values():
            leaving.set()

    def lag(self) -> Iterator[tuple[float, dict[str, str]]]:
        """Records the broker holds beyond what this member handled, per assigned partition."""
        consumer = self._consumer
        if consumer is None:
            return
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            progress = self._progress.get(tp)
            position = progress.position if progress is not None else None
            if position is None:
                position = self._positions.get(tp)
            if end is None or position is None:
                continue  # not fetched yet: unknown, not zero
            yield (
                max(0, end - position),
                {GROUP: self.group_id, DESTINATION: tp.topic, PARTITION: str(tp.partition)},
            )

    def _dispatch(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        """Start handling ``record`` in its own task, after the previous record of its key."""
        progress = self._progress.setdefault(tp, PartitionProgress())
        progress.started(record.offset)
        decoded = self._decoded_for_skip(record)
        if decoded is not None and self.skip is not None and self.skip(decoded):
            # Finished now; the commit position still waits for the records before it.
            moved = progress.finished(record.offset)
            if moved is not None:
                self._handled[tp] = moved
            outcome = {GROUP: self.group_id, DESTINATION: record.topic, "outcome": "skipped"}
            _finished.add(1, outcome)
            return
        key = (tp, record.key)
        if self.due_at is not None:
            task = asyncio.create_task(self._handle_when_due(tp, record))
        else:
            task = asyncio.create_task(
                self._handle_in_turn(tp, record, self._chains.previous(key), decoded)
            )
            self._chains.started(key, task)
        self._tasks.setdefault(tp, set()).add(task)
        self._in_flight += 1
        if self._in_flight >= self.max_in_flight:
            self._room.clear()

    def _decoded_for_skip(self, record: ConsumerRecord[bytes, bytes]) -> InboundMessage[Any] | None:
        """The record decoded, when a ``skip`` predicate must see it (handling then reuses it);
        None without one, or when it cannot be decoded (handled as any record: dead-lettered
        with the reason)."""
        if self.skip is None:
            return None
        try:
            return self._decode(record, h.as_dict(record.headers))
        except InvalidMessage:
            return None

    async def _handle_in_turn(
        self,
        tp: TopicPartition,
        record: ConsumerRecord[bytes, bytes],
        previous: asyncio.Future[bool] | None,
        decoded: InboundMessage[Any] | None = None,
    ) -> bool:
        handled = False
        try:
            if previous is not None:
                await asyncio.wait({previous})
            # A record whose predecessor was abandoned (shutdown, rebalance) is abandoned too:
            # neither is committed, so the next owner handles both, in order.
            if not self._abandoned(tp) and (previous is None or previous.result()):
                handled = await self._process(record, decoded)
        finally:
            self._finished(tp, record.offset, handled)
        return handled

    async def _handle_when_due(
        self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]
    ) -> bool:
        """Delayed redelivery: wait until the record's time, then handle it while holding its
        key (and a running slot)."""
        handled = False
        try:
            due = self._due_time(record)
            if due is not None and not await self._wait_until(tp, due):
                return False  # shutdown or a rebalance: the next owner reads it again
            slot = self._slots or contextlib.nullcontext()
            async with self._key_locks.holding((tp, record.key)), slot:
                if not self._abandoned(tp):
                    handled = await self._process(record)
        finally:
            self._finished(tp, record.offset, handled)
        return handled

    def _due_time(self, record: ConsumerRecord[bytes, bytes]) -> datetime | None:
        """When the record is due; None (now) also when it cannot be read: handling it then
        dead-letters it with the reason."""
        assert self.due_at is not None
        try:
            return self.due_at(self._decode(record, h.as_dict(record.headers)))
        except InvalidMessage:
            return None

    async def _wait_until(self, tp: TopicPartition, due: datetime) -> bool:
        """Hold the record until ``due``; False when its partition is given up meanwhile."""
        leaving = self._leaving.setdefault(tp, asyncio.Event())
        self._waiting += 1
        try:
            while not self._abandoned(tp):
                remaining = (due - self.clock()).total_seconds()
                if remaining <= 0:
                    return True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(leaving.wait(), min(remaining, self.tick_s))
            return False
        finally:
            self._waiting -= 1

    def _finished(self, tp: TopicPartition, offset: int, handled: bool) -> None:
        self._in_flight -= 1
        if self._in_flight <= self.max_in_flight // 2:
            self._room.set()
        tasks = self._tasks.get(tp)
        current = asyncio.current_task()
        if tasks is not None and current is not None:
            tasks.discard(current)
        progress = self._progress.get(tp)
        if not handled or progress is None:
            return  # not handled: the commit position stays before it
        moved = progress.finished(offset)
        if moved is not None:
            self._handled[tp] = moved

    async def _respect_room(self, consumer: AIOKafkaConsumer) -> None:
        """Too many records in flight: pause fetching (still polling) until half are done."""
        if self._room.is_set():
            return
        paused = consumer.assignment()
        consumer.pause(*paused)
        try:
            while not self._room.is_set() and not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), 0.5)
                await consumer.getmany(timeout_ms=0)  # paused: returns nothing, keeps membership
                await self._commit_handled()
        finally:
            consumer.resume(*(tp for tp in paused if tp in consumer.assignment()))

    def _abandoned(self, tp: TopicPartition) -> bool:
        return self._stopping.is_set() or tp in self._revoked

    async def _hand_over(self, revoked: set[TopicPartition]) -> None:
        """A rebalance takes ``revoked``: finish what is in hand, commit it, forget the rest."""
        self._revoked |= revoked
        for tp in revoked:
            self._leaving.setdefault(tp, asyncio.Event()).set()
        try:
            await self._finish_in_flight(revoked)
            await self._commit_handled(only=revoked)
        finally:
            for tp in revoked:
                self._progress.pop(tp, None)
                self._positions.pop(tp, None)
                self._handled.pop(tp, None)
                self._tasks.pop(tp, None)
                self._leaving.pop(tp, None)
            self._revoked -= revoked

    async def _finish_in_flight(self, partitions: set[TopicPartition]) -> None:
        """Wait for the records in hand on ``partitions`` (retries give up once abandoned)."""
        tasks = {task for tp in partitions for task in self._tasks.get(tp, ())}
        if tasks:
            await asyncio.wait(tasks)

    async def _learn_positions(self, consumer: AIOKafkaConsumer) -> None:
        """Where newly assigned partitions start (their first handled record updates it later)."""
        for tp in consumer.assignment():
            if tp not in self._positions and tp not in self._progress:
                with contextlib.suppress(Exception):  # unknown yet: asked again next poll
                    self._positions[tp] = await asyncio.wait_for(consumer.position(tp), 0.1)

    async def _commit_handled(self, only: set[TopicPartition] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        offsets = {
            tp: OffsetAndMetadata(offset, "")
            for tp, offset in self._handled.items()
            if only is None or tp in only
        }
        if not offsets:
            return
        for tp in offsets:
            self._handled.pop(tp, None)
        try:
            await consumer.commit(offsets)
        except Exception as error:  # a rebalance took the partition: its new owner redelivers
            log.warning("commit failed; messages will be redelivered", extra={"error": repr(error)})

    async def _process(
        self, record: ConsumerRecord[bytes, bytes], decoded: InboundMessage[Any] | None = None
    ) -> bool:
        """Handle one record to completion (``decoded``: the record already decoded). False when
        shutdown or a rebalance interrupted it (no commit: the next owner handles it again)."""
        tp = TopicPartition(record.topic, record.partition)
        headers = h.as_dict(record.headers)
        attempts = _Attempts()
        with processing_span(record, headers, group_id=self.group_id) as span:
            try:
                message = decoded if decoded is not None else self._decode(record, headers)
                if self.due_at is not None:
                    self.due_at(message)  # its due time must be readable too
            except InvalidMessage as error:
                mark_failed(span, error)
                return await self._dead_letter(record, error, attempts=1)
            appeal_id = getattr(message.payload, "appeal_id", None)
            if isinstance(appeal_id, str) and appeal_id:
                span.set_attribute(tracing.APPEAL_ID, appeal_id)
            while not self._abandoned(tp):
                attempts.count += 1
                try:
                    await self.handler(message)
                except InvalidMessage as error:
                    mark_failed(span, error)
                    return await self._dead_letter(record, error, attempts=attempts.count)
                except TransientError as error:
                    attempts.last_error = error
                    await self._wait_before_retry(record, attempts)
                except Exception as error:
                    attempts.last_error = error
                    if attempts.count >= self.retry.max_attempts_unexpected:
                        log.exception("handler failed; dead-lettering", extra=_where(record))
                        mark_failed(span, error)
                        return await self._dead_letter(record, error, attempts=attempts.count)
                    await self._wait_before_retry(record, attempts)
                else:
                    _finished.add(
                        1, {GROUP: self.group_id, DESTINATION: record.topic, "outcome": "handled"}
                    )
                    return True
            return False

    def _decode(
        self, record: ConsumerRecord[bytes, bytes], headers: dict[str, bytes]
    ) -> InboundMessage[Any]:
        topic = self._topics_by_name[record.topic]
        if record.value is None:
            raise InvalidMessage("record has no value (tombstones are not part of any contract)")
        schema = headers.get(h.SCHEMA)
        expected = topic.payload_type.DESCRIPTOR.full_name
        if schema is not None and schema.decode(errors="replace") != expected:
            raise InvalidMessage(
                f"schema header {schema!r} does not match topic payload {expected}"
            )
        try:
            payload = topic.decode(record.value)
        except DecodeError as error:
            raise InvalidMessage(f"payload is not a valid {expected}: {error}") from error
        return InboundMessage(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode(errors="replace") if record.key is not None else None,
            payload=payload,
            headers=headers,
            timestamp_ms=record.timestamp,
        )

    async def _wait_before_retry(
        self, record: ConsumerRecord[bytes, bytes], attempts: _Attempts
    ) -> None:
        _retries.add(1, {GROUP: self.group_id, DESTINATION: record.topic})
        delay = self.retry.backoff(attempts.count)
        log.warning(
            "handler failed; retrying",
            extra={
                **_where(record),
                "attempt": attempts.count,
                "delay_s": round(delay, 3),
                "error": repr(attempts.last_error),
            },
        )
        await self._sleep_unless_abandoned(record, delay)

    async def _sleep_unless_abandoned(
        self, record: ConsumerRecord[bytes, bytes], delay: float
    ) -> None:
        """Back off before the next attempt; cut short by shutdown or a rebalance. Only this
        record's key waits: the loop keeps polling and handling other keys meanwhile."""
        tp = TopicPartition(record.topic, record.partition)
        deadline = time.monotonic() + delay
        while not self._abandoned(tp):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), min(remaining, 0.5))

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], error: BaseException, *, attempts: int
    ) -> bool:
        """Forward the original record to ``<topic>.dlq`` with headers that explain it.

        False when shutdown came first: the record is then neither parked nor committed.
        """
        topic = self._topics_by_name[record.topic]
        reason = h.failure_reason(error)
        dlq_headers = h.dead_letter_headers(
            record, error, attempts=attempts, group_id=self.group_id
        )
        # The DLQ write is the handling of this message; if the broker refuses it, keep retrying
        # rather than commit past a message that is neither handled nor parked.
        retry_attempt = 0
        tp = TopicPartition(record.topic, record.partition)
        while (pause_s := self._dead_letter_pace.wait_s()) > 0:
            log.warning(
                "dead letters paced: the record waits on its topic",
                extra={**_where(record), "reason": reason, "wait_s": round(pause_s, 3)},
            )
            await self._sleep_unless_abandoned(record, pause_s)
            if self._abandoned(tp):
                return False
        while True:
            try:
                await self.producer.publish_raw(topic.dlq, record.key, record.value, dlq_headers)
                break
            except TransientError:
                retry_attempt += 1
                await self._sleep_unless_abandoned(record, self.retry.backoff(retry_attempt))
                if self._abandoned(tp):
                    return False
        _finished.add(
            1, {GROUP: self.group_id, DESTINATION: record.topic, "outcome": "dead_lettered"}
        )
        _dead_lettered.add(1, {DESTINATION: topic.dlq})
        log.error(
            "message dead-lettered",
            extra={**_where(record), "dlq": topic.dlq, "reason": reason, "attempts": attempts},
        )
        return True


def mark_failed(span: Span, error: BaseException) -> None:
    """The record could not be handled: the span says why (and the duration's ``error.type``)."""
    span.set_status(Status(StatusCode.ERROR, h.failure_reason(error)))
    span.set_attribute("error.type", type(error).__qualname__)


@contextmanager
def processing_span(
    record: ConsumerRecord[Any, Any], headers: Mapping[str, bytes], *, group_id: str
) -> Iterator[Span]:
    """The CONSUMER span around handling one record, and its ``messaging.process.duration``.

    Started here, around the handler, as a child of the context the producer injected (not by an
    instrumentation that would end it before the handler runs): the handler's own spans (store
    calls, the events it publishes) nest in it, so the trace continues through this hop.
    Handlers set ``error.type`` on the span when the record failed; the duration carries it too.
    """
    key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else record.key
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        DESTINATION: record.topic,
        GROUP: group_id,
        PARTITION: str(record.partition),
        "messaging.kafka.offset": record.offset,
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = key
    started = time.perf_counter()
    with tracer.start_as_current_span(
        f"process {record.topic}",
        context=propagate.extract(dict(headers), getter=_HeaderGetter()),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        try:
            yield span
        finally:
            error_type = getattr(span, "attributes", {}).get("error.type")
            _process_duration.record(
                time.perf_counter() - started,
                {
                    "messaging.system": "kafka",
                    DESTINATION: record.topic,
                    GROUP: group_id,
                    **({"error.type": str(error_type)} if error_type else {}),
                },
            )


def _where(record: ConsumerRecord[Any, Any]) -> dict[str, Any]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
