"""The consumer runner against the real broker and store: once per group, redelivery, DLQ."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from appeals.v1 import events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.errors import InvalidMessage, TransientError
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import ConsumerRunner, InboundMessage, RetryPolicy
from appeals_runtime.kafka.producer import EventProducer
from tests.support.kafka import appeal_event, committed_offset, read_all, scratch_topic

pytestmark = pytest.mark.integration

CRASHING_CONSUMER = Path(__file__).parents[1] / "support" / "crashing_consumer.py"


async def _run_until(
    runners: list[ConsumerRunner], done: asyncio.Event, timeout_s: float = 60
) -> None:
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
    finally:
        for runner in runners:
            await runner.stop()
        await asyncio.gather(*tasks)


async def test_each_message_is_handled_once_by_a_group_of_two(
    infra: Infrastructure, producer: EventProducer
) -> None:
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=4)
    handled: Counter[str] = Counter()
    done = asyncio.Event()
    total = 40

    sentinels = [appeal_event(f"appeal-{key}") for key in range(7)]
    sentinels_seen = asyncio.Event()

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        handled[message.payload.event_id] += 1
        if sum(handled.values()) >= total:
            done.set()
        if all(s.event_id in handled for s in sentinels):
            sentinels_seen.set()

    group = f"group-{uuid.uuid4().hex[:8]}"
    runners = [
        ConsumerRunner(
            name=f"member-{i}",
            bootstrap_servers=infra.kafka_bootstrap_servers,
            group_id=group,
            topics=[topic],
            handler=handle,
            producer=producer,
        )
        for i in range(2)
    ]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    await asyncio.gather(*(r.started.wait() for r in runners))
    sent = [appeal_event(f"appeal-{i % 7}") for i in range(total)]
    for event in sent:
        await producer.publish(topic, event)
    try:
        await asyncio.wait_for(done.wait(), 60)
        # A wrongful second delivery of any of them would come before a later message on its
        # partition: one more message per key, and waiting for all of them, shows it (no fixed
        # sleep that a slow machine could outwait).
        for sentinel in sentinels:
            await producer.publish(topic, sentinel)
        await asyncio.wait_for(sentinels_seen.wait(), 60)
    finally:
        for runner in runners:
            await runner.stop()
        await asyncio.gather(*tasks)

    assert set(handled) == {e.event_id for e in [*sent, *sentinels]}
    assert all(count == 1 for count in handled.values()), handled.most_common(3)


async def test_a_consumer_killed_before_committing_gets_the_message_again_and_applies_it_once(
    infra: Infrastructure, producer: EventProducer, db: store.Database
) -> None:
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    event = appeal_event("appeal-crash")
    await producer.publish(topic, event)
    group = f"group-{uuid.uuid4().hex[:8]}"

    def consume(*, crash: bool) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        return subprocess.run(
            [
                sys.executable,
                str(CRASHING_CONSUMER),
                infra.kafka_bootstrap_servers,
                infra.mongodb_url,
                db.name,
                topic.name,
                group,
                "crash" if crash else "finish",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
            check=False,
        )

    crashed = consume(crash=True)
    assert crashed.returncode == 137, crashed.stdout + crashed.stderr
    assert await db.deliveries.count_documents({}) == 1
    assert await db.effects.count_documents({}) == 1

    restarted = consume(crash=False)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    # Delivered again because the first process died before committing...
    assert await db.deliveries.count_documents({"event_id": event.event_id}) == 2
    # ...and applied once, because the handler is idempotent.
    assert await db.effects.count_documents({}) == 1

    # The second run committed: a third member of the group gets nothing.
    again = consume(crash=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert await db.deliveries.count_documents({}) == 2


async def test_a_poison_message_goes_to_the_dlq_with_its_reason_and_the_rest_are_processed(
    infra: Infrastructure, producer: EventProducer
) -> None:
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    handled: list[str] = []
    done = asyncio.Event()

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        if not message.payload.HasField("submitted"):
            raise InvalidMessage("event carries no payload", field="payload")
        handled.append(message.payload.event_id)
        if len(handled) == 2:
            done.set()

    before = appeal_event("appeal-1")
    no_payload = events_pb2.AppealEvent(event_id="e-empty", appeal_id="appeal-1")
    after = appeal_event("appeal-1")
    await producer.publish(topic, before)
    await producer.publish_raw(
        topic.name, b"appeal-1", b"\xff\xff\xff not protobuf", [("trace", b"x")]
    )
    await producer.publish(topic, no_payload)
    await producer.publish(topic, after)

    runner = ConsumerRunner(
        name="poison",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"group-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=handle,
        producer=producer,
    )
    await _run_until([runner], done)

    assert handled == [before.event_id, after.event_id]
    dead: list[Any] = await read_all(infra.kafka_bootstrap_servers, topic.dlq, expect=2)
    assert len(dead) == 2
    undecodable, invalid = sorted(dead, key=lambda r: r.offset)
    undecodable_headers = h.as_dict(undecodable.headers)
    assert undecodable.value == b"\xff\xff\xff not protobuf"
    assert undecodable_headers[h.DLQ_ERROR_TYPE] == b"InvalidMessage"
    assert b"not a valid appeals.v1.AppealEvent" in undecodable_headers[h.DLQ_ERROR_MESSAGE]
    assert undecodable_headers[h.DLQ_ORIGINAL_TOPIC] == topic.name.encode()
    assert undecodable_headers[h.DLQ_ORIGINAL_OFFSET] == b"1"
    assert undecodable_headers[h.DLQ_ATTEMPTS] == b"1"
    assert undecodable_headers["trace"] == b"x"  # the original headers travel along
    invalid_headers = h.as_dict(invalid.headers)
    assert invalid_headers[h.DLQ_ERROR_MESSAGE] == b"event carries no payload"
    assert invalid_headers[h.DLQ_ERROR_FIELD] == b"payload"
    assert invalid_headers[h.DLQ_ORIGINAL_OFFSET] == b"2"


async def test_an_unexpected_error_is_retried_then_dead_lettered_without_blocking(
    infra: Infrastructure, producer: EventProducer
) -> None:
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    attempts: Counter[str] = Counter()
    done = asyncio.Event()
    flaky, broken, fine = (appeal_event("a") for _ in range(3))

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        event_id = message.payload.event_id
        attempts[event_id] += 1
        if event_id == flaky.event_id and attempts[event_id] < 2:
            raise ConnectionResetError("blip")
        if event_id == broken.event_id:
            raise KeyError("a bug this message triggers")
        if event_id == fine.event_id:
            done.set()

    for event in (flaky, broken, fine):
        await producer.publish(topic, event)
    runner = ConsumerRunner(
        name="flaky",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"group-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=handle,
        producer=producer,
        retry=RetryPolicy(initial_backoff_s=0.01, max_attempts_unexpected=3),
    )
    await _run_until([runner], done)

    assert attempts[flaky.event_id] == 2
    assert attempts[broken.event_id] == 3
    assert attempts[fine.event_id] == 1
    dead = await read_all(infra.kafka_bootstrap_servers, topic.dlq, expect=1)
    assert [h.as_dict(r.headers)[h.DLQ_ATTEMPTS] for r in dead] == [b"3"]
    assert h.as_dict(dead[0].headers)[h.DLQ_ERROR_TYPE] == b"KeyError"


async def test_keys_are_handled_side_by_side_each_in_order_and_a_stuck_key_holds_the_commit(
    infra: Infrastructure, producer: EventProducer
) -> None:
    """One partition, several appeals: records of different appeals run concurrently, each
    appeal's records in offset order; one appeal failing transiently delays only itself, and
    the group's committed offset never passes its record until it is handled."""
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    appeals = [f"appeal-{i}" for i in range(6)]
    sent = [appeal_event(appeals[i % len(appeals)]) for i in range(36)]
    stuck = sent[0]  # appeal-0's first record: fails until released
    release = asyncio.Event()
    order: dict[str, list[str]] = {appeal: [] for appeal in appeals}
    running = 0
    most_at_once = 0
    done = asyncio.Event()
    others_done = asyncio.Event()
    others = [e.event_id for e in sent if e.appeal_id != stuck.appeal_id]

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        nonlocal running, most_at_once
        event = message.payload
        if event.event_id == stuck.event_id and not release.is_set():
            raise TransientError("store unavailable (test)")
        running += 1
        most_at_once = max(most_at_once, running)
        try:
            await asyncio.sleep(0.02)  # a store round trip
        finally:
            running -= 1
        order[event.appeal_id].append(event.event_id)
        if sum(len(order[a]) for a in appeals[1:]) == len(others):
            others_done.set()
        if sum(map(len, order.values())) == len(sent):
            done.set()

    for event in sent:
        await producer.publish(topic, event)
    group = f"group-{uuid.uuid4().hex[:8]}"
    runner = ConsumerRunner(
        name="side-by-side",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=group,
        topics=[topic],
        handler=handle,
        producer=producer,
        retry=RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.1),
        commit_interval_s=0.05,
    )
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(others_done.wait(), 30)
        # Everything else is handled, appeal-0 is stuck at offset 0: nothing may be committed.
        assert order[stuck.appeal_id] == []
        assert await committed_offset(infra.kafka_bootstrap_servers, topic.name, group) is None
        release.set()
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await runner.stop()
        await task

    assert most_at_once > 1
    for appeal in appeals:
        assert order[appeal] == [e.event_id for e in sent if e.appeal_id == appeal]
    assert await committed_offset(infra.kafka_bootstrap_servers, topic.name, group) == len(sent)


async def test_skipped_records_never_reach_the_handler_and_never_pass_the_commit_ahead(
    infra: Infrastructure, producer: EventProducer
) -> None:
    """Records the handler would ignore are finished when fetched (no handler call), yet the
    committed offset still waits for a record before them; a record that cannot be decoded is
    never skipped: it goes to the DLQ."""
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    stuck = appeal_event("appeal-1")

    def notice(appeal_id: str) -> events_pb2.AppealEvent:
        return events_pb2.AppealEvent(
            event_id=uuid.uuid4().hex, appeal_id=appeal_id,
            notified=events_pb2.AppellantNotified(kind="received"),
        )  # fmt: skip

    ignored = [notice("appeal-1"), notice("appeal-2")]
    last = appeal_event("appeal-2")
    release, last_handled, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    handled: list[str] = []

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        if message.payload.event_id == stuck.event_id and not release.is_set():
            raise TransientError("store unavailable (test)")
        handled.append(message.payload.event_id)
        if last.event_id in handled:
            last_handled.set()
        if stuck.event_id in handled:
            done.set()

    await producer.publish(topic, stuck)
    for event in ignored:
        await producer.publish(topic, event)
    await producer.publish_raw(topic.name, b"appeal-2", b"\xff not protobuf", [])
    await producer.publish(topic, last)
    group = f"group-{uuid.uuid4().hex[:8]}"
    runner = ConsumerRunner(
        name="skipping",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=group,
        topics=[topic],
        handler=handle,
        producer=producer,
        retry=RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.1),
        commit_interval_s=0.05,
        skip=lambda message: message.payload.HasField("notified"),
    )
    task = asyncio.create_task(runner.run())
    try:
        dead: list[Any] = await read_all(infra.kafka_bootstrap_servers, topic.dlq, expect=1)
        assert dead[0].value == b"\xff not protobuf"
        await asyncio.wait_for(last_handled.wait(), 30)
        # Everything after it is finished, the record at offset 0 is not: nothing committed.
        assert await committed_offset(infra.kafka_bootstrap_servers, topic.name, group) is None
        release.set()
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await runner.stop()
        await task

    assert handled == [last.event_id, stuck.event_id]
    assert await committed_offset(infra.kafka_bootstrap_servers, topic.name, group) == 5
