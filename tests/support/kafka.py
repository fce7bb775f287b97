"""Helpers for tests that use the real broker: scratch topics and reading a topic back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from appeals.topics import Topic
from appeals.v1 import events_pb2
from appeals_devstack.kafka import create_topics


def _event_key(event: events_pb2.AppealEvent) -> str:
    return event.appeal_id


async def scratch_topic(
    bootstrap_servers: str, *, partitions: int = 3
) -> Topic[events_pb2.AppealEvent]:
    """A topic of appeal events private to one test, with its DLQ."""
    topic = Topic(
        name=f"test.{uuid.uuid4().hex[:10]}",
        payload_type=events_pb2.AppealEvent,
        key=_event_key,
        key_name="appeal_id",
        description="scratch topic for one test",
    )
    await create_topics(bootstrap_servers, [topic.name, topic.dlq], partitions=partitions)
    return topic


def from_the_start(bootstrap_servers: str, topic_name: str) -> AIOKafkaConsumer:
    """A reader of every partition of a topic from its first record, outside any group."""
    return AIOKafkaConsumer(
        topic_name,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )


async def read_all(
    bootstrap_servers: str, topic_name: str, *, expect: int, timeout_s: float = 20
) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the beginning until ``expect`` records arrived or the time is up."""
    consumer = from_the_start(bootstrap_servers, topic_name)
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(records) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def read_to_end(
    bootstrap_servers: str, topic_name: str, *, timeout_s: float = 30
) -> list[ConsumerRecord[Any, Any]]:
    """Every record a topic holds now: each partition from its start to its current end."""
    consumer = from_the_start(bootstrap_servers, topic_name)
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []

    async def poll() -> None:
        for batch in (await consumer.getmany(timeout_ms=200)).values():
            records.extend(batch)

    try:
        async with asyncio.timeout(timeout_s):
            while not consumer.assignment():  # every partition, once metadata arrived
                await poll()
            ends = await consumer.end_offsets(list(consumer.assignment()))
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                await poll()
    finally:
        await consumer.stop()
    return records


def appeal_event(appeal_id: str, *, event_id: str | None = None) -> events_pb2.AppealEvent:
    event = events_pb2.AppealEvent(
        event_id=event_id or uuid.uuid4().hex,
        appeal_id=appeal_id,
        schema="appeals.v1.AppealSubmitted",
        producer="tests",
    )
    event.submitted.channel = "rest"
    event.occurred_at.GetCurrentTime()
    return event


async def committed_offset(bootstrap_servers: str, topic_name: str, group: str) -> int | None:
    """The offset ``group`` committed on partition 0 of ``topic_name`` (None: nothing yet)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await reader.start()
    try:
        committed: int | None = await reader.committed(TopicPartition(topic_name, 0))
        return committed
    finally:
        await reader.stop()
