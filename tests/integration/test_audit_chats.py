"""Live-help chats in the audit log, against the real broker and store: each event once, filed
under the chat's appeal (or the chat itself for feature help), never with any text."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import pytest

from appeals import topics
from appeals.v1 import appeal_pb2, chat_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.errors import NotFound
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.producer import EventProducer
from services.audit.consumer import audit_consumer
from services.audit.log import records
from tests.support.audit import Audit, new_appeal_id, open_audit
from tests.support.kafka import read_to_end

pytestmark = pytest.mark.integration


@pytest.fixture
async def audit(db: store.Database, tmp_path: Path) -> Audit:
    return await open_audit(db, tmp_path)


def chat_event(
    chat_id: str,
    kind: chat_pb2.ChatEventKind.ValueType,
    appeal_id: str = "",
    *,
    agent_id: str = "",
    resolution: str = "",
    verification_id: str = "",
) -> chat_pb2.ChatEvent:
    event = chat_pb2.ChatEvent(
        event_id=uuid.uuid4().hex,
        chat_id=chat_id,
        kind=kind,
        platform=appeal_pb2.PLATFORM_INSTAGRAM,
        topic=chat_pb2.CHAT_TOPIC_ACCOUNT_ACCESS if appeal_id else chat_pb2.CHAT_TOPIC_FEATURE_HELP,
        language="en",
        appeal_id=appeal_id,
        agent_id=agent_id,
        resolution=resolution,
        verification_id=verification_id,
    )
    event.occurred_at.GetCurrentTime()
    return event


async def entries_of(audit: Audit, subject: str, count: int) -> list[dict[str, object]]:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        with contextlib.suppress(NotFound):  # until its first entry is logged
            trail = await audit.service.trail(subject)
            if len(trail.entries) >= count:
                return [entry.document for entry in trail.entries]
        assert asyncio.get_running_loop().time() < deadline, "the audit consumer fell behind"
        await asyncio.sleep(0.1)


async def test_chat_events_are_logged_once_under_their_appeal_or_chat(
    infra: Infrastructure, producer: EventProducer, audit: Audit
) -> None:
    appeal_id = new_appeal_id()
    chat_id, help_chat_id = uuid.uuid4().hex, uuid.uuid4().hex
    requested = chat_event(
        chat_id, chat_pb2.CHAT_EVENT_KIND_REQUESTED, appeal_id, verification_id="v-1"
    )
    joined = chat_event(chat_id, chat_pb2.CHAT_EVENT_KIND_AGENT_JOINED, appeal_id, agent_id="a-1")
    closed = chat_event(
        chat_id, chat_pb2.CHAT_EVENT_KIND_CLOSED, appeal_id, agent_id="a-1", resolution="upheld"
    )
    feature = chat_event(help_chat_id, chat_pb2.CHAT_EVENT_KIND_REQUESTED)
    runner = audit_consumer(
        name="audit-chats-test",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"audit-{uuid.uuid4().hex[:8]}",
        service=audit.service,
        secrets=audit.secrets,
        producer=producer,
    )
    running = asyncio.create_task(runner.run())
    try:
        # joined twice, as after a retry: one entry. The chat's events share its partition.
        for event in (requested, joined, joined, closed, feature):
            await producer.publish(topics.HELP_CHATS, event)
        logged = await entries_of(audit, appeal_id, 3)
        feature_logged = await entries_of(audit, records.CHAT_SUBJECT_PREFIX + help_chat_id, 1)
    finally:
        await runner.stop()
        await running

    assert [entry["type"] for entry in logged] == [
        "chat_requested",
        "chat_agent_joined",
        "chat_closed",
    ]
    assert [entry["event_id"] for entry in logged] == [
        requested.event_id,
        joined.event_id,
        closed.event_id,
    ]
    assert feature_logged[0]["type"] == "chat_requested"
    assert (await audit.service.integrity.verify()).ok


async def test_a_chat_event_without_an_id_goes_to_the_dead_letter_queue_not_the_log(
    infra: Infrastructure, producer: EventProducer, audit: Audit
) -> None:
    broken = chat_event(uuid.uuid4().hex, chat_pb2.CHAT_EVENT_KIND_REQUESTED)
    broken.event_id = ""
    sentinel = chat_event(broken.chat_id, chat_pb2.CHAT_EVENT_KIND_CLOSED)
    runner = audit_consumer(
        name="audit-chats-dlq-test",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"audit-{uuid.uuid4().hex[:8]}",
        service=audit.service,
        secrets=audit.secrets,
        producer=producer,
    )
    running = asyncio.create_task(runner.run())
    try:
        await producer.publish(topics.HELP_CHATS, broken)
        await producer.publish(topics.HELP_CHATS, sentinel)
        logged = await entries_of(audit, records.CHAT_SUBJECT_PREFIX + broken.chat_id, 1)
        dead = await read_to_end(infra.kafka_bootstrap_servers, topics.HELP_CHATS.dlq)
    finally:
        await runner.stop()
        await running
    assert [entry["event_id"] for entry in logged] == [sentinel.event_id]
    ours = [r for r in dead if r.key == broken.chat_id.encode()]
    assert len(ours) == 1
    headers = dict(ours[0].headers)
    assert headers[h.DLQ_ERROR_FIELD] == b"event_id"
    assert headers[h.DLQ_ORIGINAL_TOPIC] == topics.HELP_CHATS.name.encode()
