"""Kafka adapter of routing: every submitted appeal becomes a case in a queue."""

from __future__ import annotations

import logging

from appeals.v1 import events_pb2
from appeals_runtime import topics
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.events import derived_event_id, event_type, new_event, occurred_at
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.routing import policy
from services.routing.model import Case
from services.routing.repository import RoutingRepository

log = logging.getLogger(__name__)


class SubmittedAppeals:
    def __init__(
        self, repository: RoutingRepository, producer: EventProducer, *, service_name: str
    ) -> None:
        self._repository = repository
        self._producer = producer
        self._service_name = service_name

    async def handle(self, message: InboundMessage[events_pb2.AppealEvent]) -> None:
        event = message.payload
        if event_type(event) != "submitted":
            return  # routing acts on new appeals only; its own events come back here too
        if not event.appeal_id or not event.event_id:
            raise InvalidMessage("event_id and appeal_id are required", field="appeal_id")
        submission = event.submitted.submission
        received_at = occurred_at(event)
        decision = policy.route(submission, received_at=received_at)
        await self._repository.insert_case(
            Case(
                appeal_id=event.appeal_id,
                queue=decision.queue,
                priority=decision.priority,
                sla_due_at=decision.sla_due_at,
                received_at=received_at,
                submission=submission,
                status="queued",
            )
        )
        routed = events_pb2.AppealRouted(
            queue=decision.queue,
            priority=decision.priority,
            platform=submission.platform,
            policy=submission.decision.policy,
            language=decision.language,
        )
        routed.sla_due_at.FromDatetime(decision.sla_due_at)
        # Published on every delivery (same id): a crash after the insert cannot lose it.
        await self._producer.publish(
            topics.APPEAL_LIFECYCLE,
            new_event(
                event_id=derived_event_id(event.appeal_id, "routed"),
                appeal_id=event.appeal_id,
                causation_id=event.event_id,
                producer=self._service_name,
                routed=routed,
            ),
        )
        log.info(
            "appeal routed",
            extra={"appeal_id": event.appeal_id, "queue": decision.queue,
                   "priority": decision.priority},
        )  # fmt: skip
