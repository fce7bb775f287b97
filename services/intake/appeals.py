"""Taking in appeals: the one submit path behind REST, gRPC and Kafka requests, and look-ups.

Order of a submit, and why:
1. authenticate, check scope, validate: nothing is written for a bad request;
2. reserve the idempotency key (unique index): a retry or a concurrent duplicate finds it;
3. publish the submitted event and wait for the broker's acknowledgement: only now is the
   appeal accepted (a broker failure surfaces as 503 and the caller retries with the same key);
4. record the appeal and the answer for replays.
A crash between 3 and 4 is safe: the retry derives the same appeal id and event id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appeals.v1 import appeal_pb2, events_pb2
from appeals_runtime import store, topics, vocabulary
from appeals_runtime.auth import Principal, Role, Scope
from appeals_runtime.errors import NotFound, Unprocessable
from appeals_runtime.events import new_event
from appeals_runtime.kafka.producer import EventProducer
from services.intake import identity, validation
from services.intake.model import AppealRecord
from services.intake.repository import IntakeRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    appeal_id: str
    status: str = "received"
    # True when this answer replays the one given to an earlier request with the same key.
    replayed: bool = False

    def as_response(self) -> dict[str, Any]:
        return {"appeal_id": self.appeal_id, "status": self.status}


class AppealIntake:
    def __init__(
        self,
        repository: IntakeRepository,
        producer: EventProducer,
        *,
        service_name: str = "intake",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repository = repository
        self._producer = producer
        self._service_name = service_name
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())

    async def submit(
        self,
        principal: Principal,
        submission: appeal_pb2.AppealSubmission,
        *,
        idempotency_key: str | None,
        key_field: str,
        channel: str,
    ) -> Accepted:
        principal.require(Scope.SUBMIT, role=Role.SURFACE)
        now = self._clock()
        validation.ensure_valid(
            validation.idempotency_key_violations(key_field, idempotency_key)
            + validation.submission_violations(submission, now=now)
        )
        principal.require_platform(vocabulary.platform_name(submission.platform))
        assert idempotency_key is not None  # checked by the validation above
        scope = identity.idempotency_scope(principal.subject, idempotency_key)
        appeal_id = identity.appeal_id_for(scope)
        fingerprint = identity.fingerprint(submission)

        earlier = await self._repository.reserve_key(scope, fingerprint, appeal_id, now)
        if earlier is not None:
            if earlier.fingerprint != fingerprint:
                raise Unprocessable(
                    "this idempotency key was already used for a different request; "
                    "use a new key for a new appeal"
                )
            if earlier.response is not None:
                return Accepted(**earlier.response, replayed=True)
            # The first request is in flight or died before answering: publishing again is
            # harmless, because the appeal id and the event id are the same.

        event = new_event(
            event_id=identity.submitted_event_id(appeal_id),
            appeal_id=appeal_id,
            producer=self._service_name,
            occurred_at=now,
            submitted=events_pb2.AppealSubmitted(
                submission=submission, channel=channel, surface=principal.subject
            ),
        )
        await self._producer.publish(topics.APPEAL_LIFECYCLE, event)
        await self._repository.insert_appeal(
            AppealRecord(appeal_id, principal.subject, submission, "received", now, now),
            event_id=event.event_id,
        )
        accepted = Accepted(appeal_id)
        await self._repository.record_response(scope, accepted.as_response())
        platform = vocabulary.platform_name(submission.platform)
        log.info(
            "appeal accepted",
            extra={"appeal_id": appeal_id, "platform": platform, "channel": channel},
        )
        return accepted

    async def get(self, principal: Principal, appeal_id: str) -> AppealRecord:
        principal.require(Scope.READ)
        record = await self._repository.get_appeal(appeal_id)
        if record is None:
            raise NotFound(f"no appeal {appeal_id}")
        principal.require_platform(record.platform)
        return record
