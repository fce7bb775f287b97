"""The consumer runner's delayed redelivery (a retry topic) and its dead-letter pacing, against
the real broker: records run when due, not in offset order, one key at a time; what waits when
the runner stops is not committed; a flood of dead letters waits its turn on its topic."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appeals.v1 import events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.kafka.consumer import ConsumerRunner, InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from tests.support.kafka import appeal_event, committed_offset, read_all, scratch_topic

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def due(appeal_id: str, after_s: float) -> events_pb2.AppealEvent:
    """An event whose due time (here: its occurred_at) is ``after_s`` after T0."""
    event = appeal_event(appeal_id)
    event.occurred_at.FromDatetime(T0 + timedelta(seconds=after_s))
    return event


def due_at(message: InboundMessage[events_pb2.AppealEvent]) -> datetime | None:
    if message.payload.producer == "unreadable":
        raise InvalidMessage("no due time", field="occurred_at")
    return message.payload.occurred_at.ToDatetime(tzinfo=UTC)


async def eventually(condition: Any, what: str, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.02)


async def test_records_run_when_due_one_key_at_a_time_and_what_waits_is_not_committed(
    infra: Infrastructure, producer: EventProducer
) -> None:
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    group = f"delayed-{uuid.uuid4().hex[:8]}"
    clock = Clock()
    handled: list[str] = []
    running: dict[str, int] = {}
    most_per_key = 0
    release = asyncio.Event()

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        nonlocal most_per_key
        key = message.payload.appeal_id
        running[key] = running.get(key, 0) + 1
        most_per_key = max(most_per_key, running[key])
        if key in ("x", "y", "z"):
            await release.wait()
        running[key] -= 1
        handled.append(message.payload.event_id)

    def runner() -> ConsumerRunner:
        return ConsumerRunner(
            name="delayed", bootstrap_servers=infra.kafka_bootstrap_servers, group_id=group,
            topics=[topic], handler=handle, producer=producer, due_at=due_at, clock=clock,
            tick_s=0.05, max_running=2, commit_interval_s=0.1,
        )  # fmt: skip

    tomorrow, later, now = due("a", 86_400), due("b", 60), due("a", 0)
    blocking = [due("x", 0), due("x", 0), due("y", 0), due("z", 0)]
    last = due("c", 600)
    for event in (tomorrow, later, now, *blocking, last):
        await producer.publish(topic, event)

    first = runner()
    task = asyncio.create_task(first.run())
    try:
        # Due now: a's record at offset 2 runs although a's record at offset 0 waits for
        # tomorrow; the blocking ones take both running slots, x's two records never together.
        await eventually(lambda: sum(running.values()) == 2, "two records running")
        assert handled == [now.event_id]
        assert first.waiting == 3
        release.set()
        await eventually(lambda: {e.event_id for e in blocking} <= set(handled), "all of them")
        assert most_per_key == 1
        clock.now = T0 + timedelta(seconds=61)
        await eventually(lambda: later.event_id in handled, "the record due in a minute")
        assert first.waiting == 2  # tomorrow's and c's
    finally:
        await first.stop()
        await task
    assert tomorrow.event_id not in handled and last.event_id not in handled
    # Offset 0 (tomorrow's) still waited: nothing of the partition was committed past it.
    assert await committed_offset(infra.kafka_bootstrap_servers, topic.name, group) in (None, 0)

    # The next owner reads them again and runs them when they fall due.
    clock.now = T0 + timedelta(days=2)
    handled.clear()
    second = runner()
    task = asyncio.create_task(second.run())
    try:
        await eventually(
            lambda: {tomorrow.event_id, last.event_id} <= set(handled), "the waiting ones"
        )
    finally:
        await second.stop()
        await task
    assert await committed_offset(infra.kafka_bootstrap_servers, topic.name, group) == 8


async def test_an_unreadable_due_time_is_dead_lettered_and_the_rest_run(
    infra: Infrastructure, producer: EventProducer
) -> None:
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    handled: list[str] = []
    unreadable = due("a", 0)
    unreadable.producer = "unreadable"
    fine = due("a", 0)
    await producer.publish(topic, unreadable)
    await producer.publish(topic, fine)

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        handled.append(message.payload.event_id)

    runner = ConsumerRunner(
        name="delayed-dlq", bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"delayed-{uuid.uuid4().hex[:8]}", topics=[topic], handler=handle,
        producer=producer, due_at=due_at, clock=Clock(), tick_s=0.05,
    )  # fmt: skip
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: fine.event_id in handled, "the readable record")
        dead = await read_all(infra.kafka_bootstrap_servers, topic.dlq, expect=1)
    finally:
        await runner.stop()
        await task
    assert handled == [fine.event_id]
    assert [dict(r.headers).get("dlq.error.message") for r in dead] == [b"no due time"]


async def test_dead_letters_are_paced_and_the_rest_wait_on_their_topic(
    infra: Infrastructure, producer: EventProducer, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    group = f"paced-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        await producer.publish(topic, appeal_event("a"))

    async def broken(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        raise InvalidMessage("a bad deploy refuses everything")

    caplog.set_level(logging.WARNING, logger="appeals_runtime.kafka.consumer")
    runner = ConsumerRunner(
        name="paced", bootstrap_servers=infra.kafka_bootstrap_servers, group_id=group,
        topics=[topic], handler=broken, producer=producer, commit_interval_s=0.1,
        max_dead_letters_per_minute=0.6, dead_letter_burst=1,
    )  # fmt: skip
    task = asyncio.create_task(runner.run())
    try:
        await eventually(
            lambda: any("dead letters paced" in r.getMessage() for r in caplog.records),
            "the second dead letter held back",
        )
    finally:
        await runner.stop()
        await task
    dead = await read_all(infra.kafka_bootstrap_servers, topic.dlq, expect=3, timeout_s=2)
    assert len(dead) == 1
    # The records not dead-lettered stay on the topic: the next owner gets them again.
    assert await committed_offset(infra.kafka_bootstrap_servers, topic.name, group) == 1
