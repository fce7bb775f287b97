"""The audit consumer: every topic that carries appeal history, appended to the log once.

One consumer runner reads all of them; the handler picks the translation by topic. Duplicates
(redelivery after a crash, a republished event) are no-ops in the repository, so the runner's
at-least-once delivery turns into exactly-once entries. Each partition is handled in order, one
message at a time, so an appeal's events (keyed by appeal id, one partition) enter the log in the
order they were published.
"""

from __future__ import annotations

import logging
from typing import Any

from appeals import topics
from appeals_runtime import tracing
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import ConsumerRunner, InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.audit import metrics
from services.audit.log import records
from services.audit.privacy import sealing
from services.audit.service import AuditService

log = logging.getLogger(__name__)

RESTORE_TOPICS = frozenset(topic.name for topic in topics.RESTORE_COMMANDS.values())
AUDITED_TOPICS: tuple[topics.Topic[Any], ...] = (
    topics.APPEAL_LIFECYCLE,
    *topics.RESTORE_COMMANDS.values(),
    topics.HELP_CHATS,
)


def to_recorded(
    message: InboundMessage[Any], secrets: sealing.Secrets
) -> tuple[records.Recorded, records.IndexFacts]:
    producer = message.headers.get(h.PRODUCER, b"").decode(errors="replace")
    if message.topic in RESTORE_TOPICS:
        recorded = records.from_restore_command(
            message.payload, topic=message.topic, producer=producer
        )
        return recorded, records.IndexFacts()
    if message.topic == topics.HELP_CHATS.name:
        recorded = records.from_chat_event(message.payload, topic=message.topic, producer=producer)
        return recorded, records.IndexFacts()
    recorded = records.from_lifecycle_event(message.payload, topic=message.topic, secrets=secrets)
    return recorded, records.index_facts(message.payload)


class AuditHandler:
    def __init__(self, service: AuditService, secrets: sealing.Secrets) -> None:
        self._service = service
        self._secrets = secrets

    async def __call__(self, message: InboundMessage[Any]) -> None:
        recorded, facts = to_recorded(message, self._secrets)
        event = recorded.event
        trace_id = records.trace_id(message.headers.get(tracing.TRACEPARENT))
        appended = await self._service.record(recorded, facts, trace_id=trace_id)
        if appended:
            metrics.appended.add(1, {"event_type": event.type})
        log.debug(
            "audited" if appended else "already audited",
            extra={"appeal_id": event.appeal_id, "event_id": event.event_id, "type": event.type},
        )


def audit_consumer(
    *,
    name: str,
    bootstrap_servers: str,
    group_id: str,
    service: AuditService,
    secrets: sealing.Secrets,
    producer: EventProducer,
) -> ConsumerRunner:
    """The consumer runner over every audited topic; ``producer`` parks poison in the DLQs."""
    return ConsumerRunner(
        name=name,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        topics=AUDITED_TOPICS,
        handler=AuditHandler(service, secrets),
        producer=producer,
    )
