"""What the bench watches while the pipeline works: the lifecycle topic, the audit log and the
consumer groups' lag. The bench is an observer: it reads the broker and the stores, and writes
nothing the services read.

* :class:`LifecycleObserver` reads ``appeals.lifecycle.v1`` from the start (no consumer group,
  so it never shows as lag) and keeps, per appeal, the record timestamps of its ``submitted``
  and first ``routed`` event, every distinct ``routed`` event id (exactly one is expected), and
  the time from each ``decided`` event to the ``notified`` event about it.
* :class:`AuditObserver` tails the audit log by ``_id`` slot batches (``bench.audit_log``) and
  keeps, per appeal, how many ``submitted`` entries it has (exactly one is expected) and when
  its ``routed`` entry was appended (the entry's own ``recorded_at``).
* :class:`LagSampler` asks the broker every second, for every consumer group, how far its
  committed offsets are behind the end of each partition it committed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from appeals import events, topics
from appeals_runtime import store
from bench import audit_log

log = logging.getLogger(__name__)


async def topic_partitions(bootstrap_servers: str, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, from the broker (for consumers that assign, not join)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="bench-topics")
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = sorted(int(p["partition"]) for p in described["partitions"])
    if not numbers:
        raise RuntimeError(f"topic {topic} has no partitions (error {described['error_code']})")
    return [TopicPartition(topic, number) for number in numbers]


@dataclass
class AppealTimes:
    submitted_ms: int | None = None
    routed_ms: int | None = None
    routed_ids: set[str] = field(default_factory=set)
    decided_ids: set[str] = field(default_factory=set)
    # The person was told a decision (a notified event about one of ``decided_ids``).
    notified_of_decision: bool = False


class LifecycleObserver:
    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self.appeals: dict[str, AppealTimes] = {}
        # decided event id → its record timestamp, until the notification about it is seen.
        self._decided: dict[str, int] = {}
        # (decided record timestamp, notified record timestamp), one per decided event.
        self.decided_to_notified: list[tuple[int, int]] = []
        self.counts: Counter[str] = Counter()
        self._stopping = asyncio.Event()
        self._pausing = asyncio.Event()
        self._paused = asyncio.Event()
        self._resumed = asyncio.Event()

    async def pause(self) -> None:
        """Stop fetching (the idle measurement); returns once the partitions are paused."""
        self._resumed.clear()
        self._pausing.set()
        await self._paused.wait()

    def resume(self) -> None:
        self._pausing.clear()
        self._resumed.set()

    def times(self, appeal_id: str) -> AppealTimes:
        found = self.appeals.get(appeal_id)
        if found is None:
            found = self.appeals[appeal_id] = AppealTimes()
        return found

    def observe(self, value: bytes, timestamp_ms: int) -> None:
        event = topics.APPEAL_LIFECYCLE.decode(value)
        kind = events.event_type(event)
        self.counts[kind] += 1
        if kind == "submitted":
            times = self.times(event.appeal_id)
            if times.submitted_ms is None:
                times.submitted_ms = timestamp_ms
        elif kind == "routed":
            times = self.times(event.appeal_id)
            times.routed_ids.add(event.event_id)
            if times.routed_ms is None:
                times.routed_ms = timestamp_ms
        elif kind == "decided":
            self.times(event.appeal_id).decided_ids.add(event.event_id)
            self._decided.setdefault(event.event_id, timestamp_ms)
        elif kind == "notified":
            times = self.times(event.appeal_id)
            if event.notified.about_event_id in times.decided_ids:
                times.notified_of_decision = True
            decided_ms = self._decided.pop(event.notified.about_event_id, None)
            if decided_ms is not None:
                self.decided_to_notified.append((decided_ms, timestamp_ms))

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="bench-observer",
        )
        await consumer.start()
        try:
            partitions = await topic_partitions(self._bootstrap, topics.APPEAL_LIFECYCLE.name)
            consumer.assign(partitions)
            while not self._stopping.is_set():
                if self._pausing.is_set():
                    await self._sit_out(consumer, partitions)
                    continue
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    for record in records:
                        if record.value is not None:
                            self.observe(record.value, record.timestamp)
        finally:
            await consumer.stop()

    async def _sit_out(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        # Paused partitions are not fetched at all, not even by aiokafka's prefetching.
        consumer.pause(*partitions)
        self._paused.set()
        await self._resumed.wait()
        self._paused.clear()
        consumer.resume(*partitions)

    def stop(self) -> None:
        self._stopping.set()
        self._resumed.set()


class AuditObserver:
    POLL_S = 0.1
    # Slots asked for per look while the log grows at the pace of the traffic (about 20 new
    # entries per look at 50 appeals/s); a look that finds them all asks for twice as many next
    # time, up to READ_BATCH, at once. The observer shares the machine and the store with the
    # stack it measures: a look of 500 slots cost FerretDB 2.85 ms of CPU, one of 64 1.5 ms.
    FIRST_LOOK = 64

    def __init__(self, db: store.Database) -> None:
        self._log = db[audit_log.LOG_COLLECTION]
        self.next_slot = 0
        self._look = self.FIRST_LOOK
        self.submitted: Counter[str] = Counter()
        self.routed_at_ms: dict[str, int] = {}
        self.entries = 0
        self._paused = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = asyncio.Event()

    def observe(self, entry: audit_log.Entry) -> None:
        self.entries += 1
        if entry.type == "submitted":
            self.submitted[entry.appeal_id] += 1
        elif entry.type == "routed" and entry.appeal_id not in self.routed_at_ms:
            seen = entry.recorded_at.timestamp() if entry.recorded_at else time.time()
            self.routed_at_ms[entry.appeal_id] = round(seen * 1000)

    async def run(self) -> None:
        while not self._stopping.is_set():
            if self._paused.is_set():
                self._idle.set()
                await asyncio.sleep(self.POLL_S)
                continue
            self._idle.clear()
            try:
                found, self.next_slot = await audit_log.read_entries(
                    self._log, self.next_slot, self._look
                )
            except Exception as error:  # a store restarting: look again shortly
                log.warning("audit observer: %r", error)
                found = []
            for entry in found:
                self.observe(entry)
            if len(found) < self._look:
                self._look = self.FIRST_LOOK
                await asyncio.sleep(self.POLL_S)
            else:  # behind: read on at once, further each time
                self._look = min(2 * self._look, audit_log.READ_BATCH)

    async def pause(self) -> None:
        """Stop reading (idle measurement, seeding); returns once no read is in progress."""
        self._paused.set()
        await self._idle.wait()

    def resume(self) -> None:
        self._paused.clear()

    async def resume_at_end(self) -> int:
        """Skip what was seeded meanwhile and go on from the log's end; returns that slot."""
        self.next_slot = await audit_log.first_free_slot(self._log, self.next_slot)
        self._paused.clear()
        return self.next_slot

    def stop(self) -> None:
        self._stopping.set()


@dataclass(frozen=True)
class LagSample:
    at: float
    # The log end offset of every partition some group reads, and each group's committed offset
    # there: enough to tell when a group got past what had been written at an earlier moment.
    ends: dict[TopicPartition, int]
    committed: dict[str, dict[TopicPartition, int]]

    @functools.cached_property
    def groups(self) -> dict[str, int]:
        """Records not yet committed, per consumer group."""
        return {
            group: sum(max(0, self.ends.get(tp, 0) - offset) for tp, offset in offsets.items())
            for group, offsets in sorted(self.committed.items())
        }

    @property
    def total(self) -> int:
        return sum(self.groups.values())


class LagSampler:
    INTERVAL_S = 1.0

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self.samples: list[LagSample] = []
        self._stopping = asyncio.Event()
        self._paused = False

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def latest(self) -> LagSample | None:
        return self.samples[-1] if self.samples else None

    async def run(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id="bench-lag")
        ends = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None)
        await admin.start()
        await ends.start()
        try:
            while not self._stopping.is_set():
                began = time.monotonic()
                try:
                    if not self._paused:
                        self.samples.append(await self.sample(admin, ends))
                except Exception as error:
                    log.warning("lag sample failed: %r", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(),
                        max(0.0, self.INTERVAL_S - (time.monotonic() - began)),
                    )
        finally:
            await ends.stop()
            await admin.close()

    @staticmethod
    async def sample(admin: AIOKafkaAdminClient, ends: AIOKafkaConsumer) -> LagSample:
        at = time.time()
        groups: dict[str, Any] = {}
        for listed in await admin.list_consumer_groups():
            group = str(listed[0])
            groups[group] = await admin.list_consumer_group_offsets(group)
        wanted = {tp for offsets in groups.values() for tp in offsets}
        end = await ends.end_offsets(list(wanted)) if wanted else {}
        committed = {
            group: {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
            for group, offsets in groups.items()
        }
        return LagSample(at, dict(end), committed)

    def stop(self) -> None:
        self._stopping.set()


def caught_up(sample: LagSample, ends: dict[TopicPartition, int]) -> bool:
    """Whether every group in ``sample`` had committed past ``ends`` (an earlier sample's log
    end offsets) on every partition it reads."""
    return all(
        offset >= ends.get(tp, 0)
        for offsets in sample.committed.values()
        for tp, offset in offsets.items()
    )
