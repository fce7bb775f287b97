"""The audit consumer: every topic that carries appeal history, appended to the log once.

One consumer runner reads all of them; the handler picks the translation by topic. Duplicates
(redelivery after a crash, a republished event) are no-ops in the repository, so the runner's
at-least-once delivery turns into exactly-once entries.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import metrics

from appeals_runtime import topics
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import ConsumerRunner, InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.audit import records
from services.audit.chain import LoggedEvent
from services.audit.repository import AuditRepository

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)
_appended_counter = meter.create_counter(
    "appeals.audit.appended", description="Events appended to the audit log, by event type"
)

RESTORE_TOPICS = frozenset(topic.name for topic in topics.RESTORE_COMMANDS.values())
AUDITED_TOPICS: tuple[topics.Topic[Any], ...] = (
    topics.APPEAL_LIFECYCLE,
    *topics.RESTORE_COMMANDS.values(),
)


def to_logged_event(message: InboundMessage[Any]) -> LoggedEvent:
    if message.topic in RESTORE_TOPICS:
        producer = message.headers.get(h.PRODUCER, b"").decode(errors="replace")
        return records.from_restore_command(message.payload, topic=message.topic, producer=producer)
    return records.from_lifecycle_event(message.payload, topic=message.topic)


class AuditHandler:
    def __init__(self, repository: AuditRepository) -> None:
        self._repository = repository

    async def __call__(self, message: InboundMessage[Any]) -> None:
        event = to_logged_event(message)
        appended = await self._repository.append(event)
        if appended:
            _appended_counter.add(1, {"type": event.type})
        log.debug(
            "audited" if appended else "already audited",
            extra={"appeal_id": event.appeal_id, "event_id": event.event_id, "type": event.type},
        )


def audit_consumer(
    *,
    name: str,
    bootstrap_servers: str,
    group_id: str,
    repository: AuditRepository,
    producer: EventProducer,
) -> ConsumerRunner:
    """The consumer runner over every audited topic; ``producer`` parks poison in the DLQs."""
    return ConsumerRunner(
        name=name,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        topics=AUDITED_TOPICS,
        handler=AuditHandler(repository),
        producer=producer,
    )
