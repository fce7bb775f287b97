"""The retry scheduler's timing and order, without a broker: records handed to it as its reader
would, a clock the test sets, and a handler the test lets finish.

Idle, it sleeps until woken (no tick); while records wait it sleeps until the next one falls
due (at most a tick: the clock is checked, not trusted); due records run as slots free up, never
two of one appeal at once, and the commit position follows the records that finished.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from appeals.v1 import events_pb2
from appeals_runtime import events, topics
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.notifications.retries import PendingAttempt
from services.notifications.retry_consumer import RetryScheduler

NOW = datetime(2025, 6, 3, 14, 0, tzinfo=UTC)
GROUP = "notifications"
TP = TopicPartition(topics.NOTIFICATION_RETRIES.name, 0)


class Handler:
    """Records the records it runs; each one finishes when the test says so."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self._finish: dict[int, asyncio.Event] = {}

    async def __call__(
        self, message: InboundMessage[events_pb2.AppealEvent], pending: PendingAttempt
    ) -> None:
        self.started.append(message.offset)
        await self._finish.setdefault(message.offset, asyncio.Event()).wait()

    def finish(self, offset: int) -> None:
        self._finish.setdefault(offset, asyncio.Event()).set()


def scheduler(handler: Handler, *, tick_s: float = 1.0, concurrency: int = 2) -> RetryScheduler:
    return RetryScheduler(
        name="retries-test",
        bootstrap_servers="127.0.0.1:9",  # never connected: run() is not called
        group_id="notifications-retries",
        owner_group=GROUP,
        handler=handler,
        # Nothing here is dead-lettered, so nothing is published.
        producer=cast(EventProducer, object()),
        clock=lambda: NOW,
        tick_s=tick_s,
        concurrency=concurrency,
    )


def record(offset: int, appeal_id: str, due_in: timedelta) -> ConsumerRecord[bytes, bytes]:
    event = events.new_event(
        event_id=f"e-{offset}",
        appeal_id=appeal_id,
        producer="tests",
        claimed=events_pb2.CaseClaimed(agent_id="agent-1", queue="q"),
    )
    pending = PendingAttempt("", 1, NOW + due_in, "quiet_hours", GROUP)
    value = event.SerializeToString()
    return ConsumerRecord(
        topic=TP.topic,
        partition=TP.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=appeal_id.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(appeal_id),
        serialized_value_size=len(value),
        headers=pending.headers(),
    )


async def finished(retries: RetryScheduler, handler: Handler, offset: int) -> None:
    """Let the record at ``offset`` finish, and wait until the scheduler is woken by it."""
    retries._wake.clear()
    handler.finish(offset)
    await retries._wake.wait()


async def test_idle_it_waits_to_be_woken_and_a_waiting_record_only_until_it_is_due() -> None:
    retries = scheduler(Handler(), tick_s=5.0)
    assert retries._wait_s() is None  # nothing held: no wake-up at all

    await retries._hold(TP, record(0, "ap_later", timedelta(hours=8)))
    assert retries._wait_s() == 5.0  # overnight: only the clock check
    await retries._hold(TP, record(1, "ap_soon", timedelta(seconds=2)))
    assert retries._wait_s() == 2.0
    retries._launch_due()
    assert not retries._running  # nothing due yet


async def test_due_records_run_as_slots_free_and_never_two_of_one_appeal_at_once() -> None:
    handler = Handler()
    retries = scheduler(handler, concurrency=2)
    due = timedelta(seconds=-1)
    for offset, appeal_id in enumerate(["ap_a", "ap_a", "ap_b", "ap_c"]):
        await retries._hold(TP, record(offset, appeal_id, due))

    retries._launch_due()
    await asyncio.sleep(0)
    # ap_a's second record waits for its first; ap_c for a free slot.
    assert handler.started == [0, 2]
    assert retries._wait_s() is None  # every slot busy: woken when one frees, not polled

    await finished(retries, handler, 0)
    retries._launch_due()
    await asyncio.sleep(0)
    assert handler.started == [0, 2, 1]  # ap_a is free again: its parked record runs first
    assert retries._to_commit == {TP: 1}

    await finished(retries, handler, 2)
    retries._launch_due()
    await asyncio.sleep(0)
    assert handler.started == [0, 2, 1, 3]
    # Offset 1 still runs: the commit position stays before it.
    assert retries._to_commit == {TP: 1}

    await finished(retries, handler, 1)
    await finished(retries, handler, 3)
    assert retries._to_commit == {TP: 4}
    assert retries._wait_s() == 0.0  # a commit is due at once
