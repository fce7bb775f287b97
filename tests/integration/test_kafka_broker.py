"""The broker version we run (Kafka 4.1, which removed old protocol versions, KIP-896) works
with aiokafka's idempotent producer and with transactions: committed records are read, aborted
ones are not, by a read_committed consumer."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from appeals_devstack.stack import Infrastructure
from tests.support.kafka import scratch_topic

pytestmark = pytest.mark.integration


async def test_transactions_commit_and_abort_against_this_broker(infra: Infrastructure) -> None:
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=infra.kafka_bootstrap_servers,
        transactional_id=f"tx-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
        acks="all",
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic.name, b"committed-1", key=b"k")
            await producer.send(topic.name, b"committed-2", key=b"k")
        await producer.begin_transaction()
        await producer.send(topic.name, b"aborted", key=b"k")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic.name, b"committed-3", key=b"k")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic.name,
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            values += [r.value for records in batch.values() for r in records if r.value]
            if len(values) >= 3:
                break
    finally:
        await consumer.stop()
    assert values == [b"committed-1", b"committed-2", b"committed-3"]
