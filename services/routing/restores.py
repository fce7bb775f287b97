"""Restore results: the owning platform reports that a restore command was carried out.

Routing turns each report into a ``restored`` lifecycle event so notifications can tell the
person their content or account is back (or that restoring failed and is being looked at).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from appeals import topics
from appeals.events import derived_event_id, new_event
from appeals.v1 import commands_pb2, events_pb2
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.kafka.producer import EventProducer

log = logging.getLogger(__name__)


class RestoreResults:
    def __init__(self, producer: EventProducer, *, service_name: str) -> None:
        self._producer = producer
        self._service_name = service_name

    async def record(self, result: commands_pb2.RestoreResult) -> None:
        if not result.appeal_id:
            raise InvalidMessage("appeal_id is required", field="appeal_id")
        if not result.command_id:
            raise InvalidMessage("command_id is required", field="command_id")
        completed_at = (
            result.completed_at.ToDatetime(tzinfo=UTC)
            if result.HasField("completed_at")
            else datetime.now(UTC)
        )
        event = new_event(
            # One restored event per command, however often the platform reports it.
            event_id=derived_event_id(result.appeal_id, "restored", result.command_id),
            appeal_id=result.appeal_id,
            causation_id=result.command_id,
            producer=self._service_name,
            occurred_at=completed_at,
            restored=events_pb2.RestoreCompleted(
                command_id=result.command_id,
                platform=result.platform,
                succeeded=result.succeeded,
                detail=result.detail,
            ),
        )
        await self._producer.publish(topics.APPEAL_LIFECYCLE, event)
        log.info(
            "restore reported",
            extra={"appeal_id": result.appeal_id, "succeeded": result.succeeded},
        )
