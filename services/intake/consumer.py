"""Kafka adapters of intake: the status view and surfaces' request events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from appeals import topics
from appeals.events import EventHandling, event_type, occurred_at
from appeals.v1 import events_pb2, intake_pb2
from appeals_runtime.auth import (
    PermissionDenied,
    PlatformNotAllowed,
    TokenVerifier,
    Unauthenticated,
)
from appeals_runtime.errors import (
    Conflict,
    FieldViolation,
    InvalidMessage,
    TooManyRequests,
    Unprocessable,
    ValidationFailed,
)
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.intake import validation
from services.intake.erasure import Erasures
from services.intake.model import STATUS_EVENTS, status_change
from services.intake.repository import IntakeRepository
from services.intake.service import AcknowledgedHere, AppealIntake

# Intake's status view follows every event that changes what a look-up shows; the rest are
# other services' business (notices, timers, restores) or intake's own (erasures).
EVENTS = EventHandling(
    "intake",
    handled=frozenset({"submitted", *STATUS_EVENTS}),
    ignored=frozenset(
        {"notified", "notification_failed", "sla_warning", "sla_breached", "restored",
         "particulars_erased"}
    ),
)  # fmt: skip


class StatusProjection:
    """Keeps each appeal's status current from the lifecycle events (idempotently)."""

    def __init__(
        self,
        repository: IntakeRepository,
        erasures: Erasures,
        acknowledged_here: AcknowledgedHere | None = None,
    ) -> None:
        self._repository = repository
        self._erasures = erasures
        self._acknowledged_here = acknowledged_here or AcknowledgedHere()

    async def handle(self, message: InboundMessage[events_pb2.AppealEvent]) -> None:
        event = message.payload
        if not event.event_id or not event.appeal_id:
            raise InvalidMessage("event_id and appeal_id are required", field="event_id")
        if event_type(event) == "submitted":
            # It comes before the appeal's other events: the status projection learns the
            # appeal has no changes yet (no read for its first one).
            self._repository.status.started(event.appeal_id)
            # Every acknowledged appeal is listed by when it was received, for reconciliation,
            # and under its appellant, for erasure; the offset is committed only once it is
            # (off the submit's path: see received_index and appellants).
            await asyncio.gather(
                self._repository.received.add(event.appeal_id, occurred_at(event)),
                self._list_under_appellant(event),
            )
            # Intake wrote the record before publishing and marks it acknowledged right after
            # the broker's ack; this covers a crash between the two, or a store that refused the
            # mark (a no-op otherwise, and skipped when this process made the mark itself).
            # (The event carries no personal data, so it could not rebuild the record; it
            # never has to.)
            if await self._acknowledged_here.take(event.appeal_id):
                return
            await self._repository.acknowledge(
                event.appeal_id, ban_evasion_suspected=event.submitted.ban_evasion_suspected
            )
            return
        change = status_change(event)
        if change is not None and event_type(event) == "decided":
            # The appellant may appeal the same item again only once this one is answered. (Also
            # when the status was applied before: a redelivery after a crash in between.)
            await self._repository.apply_decision(event.appeal_id, event.event_id, change)
        elif change is not None:
            await self._repository.apply_status(event.appeal_id, event.event_id, change)

    async def _list_under_appellant(self, event: events_pb2.AppealEvent) -> None:
        pseudonym = event.submitted.appellant_pseudonym
        if not pseudonym:
            return  # from before pseudonyms (nothing to find it by)
        erasure = await self._repository.appellants.add(
            pseudonym, event.appeal_id, occurred_at(event)
        )
        if erasure is not None:
            # The person was forgotten while this appeal was on its way: it goes with the rest.
            await self._erasures.erase_appeal(event.appeal_id, erasure)


class RequestEvents:
    """Takes appeals that surfaces publish as events; answers each on the outcomes topic.

    A rejected request gets a rejection the surface can consume *and* goes to the requests DLQ
    with the reason, so ops see malformed traffic too.
    """

    def __init__(self, intake: AppealIntake, verifier: TokenVerifier, producer: EventProducer):
        self._intake = intake
        self._verifier = verifier
        self._producer = producer

    async def handle(self, message: InboundMessage[intake_pb2.AppealRequest]) -> None:
        request = message.payload
        if not request.request_id:
            raise InvalidMessage("request_id is required to answer a request", field="request_id")
        try:
            # The envelope is a contract too: an unknown field anywhere in it is refused, as
            # on every channel, and the record's key must be the request it carries (the
            # partition, hence the order, follows the key).
            validation.ensure_valid(
                validation.unknown_field_violations(request) + _key_violations(message)
            )
            principal = self._verifier.verify(request.token)
            accepted = await self._intake.submit(
                principal,
                request.submission,
                idempotency_key=request.request_id,
                key_field="request_id",
                channel="kafka",
            )
        except (
            ValidationFailed, Unauthenticated, PermissionDenied, Unprocessable, Conflict,
            TooManyRequests,
        ) as error:  # fmt: skip
            violations = _violations(error)
            await self._answer(request.request_id, rejected=violations)
            raise InvalidMessage(f"request rejected: {error}", field=violations[0].field) from error
        await self._answer(request.request_id, appeal_id=accepted.appeal_id)

    async def _answer(
        self,
        request_id: str,
        *,
        appeal_id: str | None = None,
        rejected: list[FieldViolation] | None = None,
    ) -> None:
        outcome = intake_pb2.AppealRequestOutcome(request_id=request_id)
        outcome.decided_at.FromDatetime(datetime.now(UTC))
        if appeal_id is not None:
            outcome.accepted.appeal_id = appeal_id
        else:
            outcome.rejected.violations.extend(
                intake_pb2.AppealRequestOutcome.Violation(field=v.field, description=v.description)
                for v in rejected or []
            )
        await self._producer.publish(topics.APPEAL_REQUEST_OUTCOMES, outcome)


def _key_violations(message: InboundMessage[intake_pb2.AppealRequest]) -> list[FieldViolation]:
    request_id = message.payload.request_id
    if message.key == request_id:
        return []
    return [
        FieldViolation(
            "key",
            f"the record's key must be its request_id {request_id!r}, not {message.key!r}",
        )
    ]


def _violations(error: Exception) -> list[FieldViolation]:
    if isinstance(error, ValidationFailed):
        return error.violations
    if isinstance(error, Unauthenticated):
        return [FieldViolation("token", str(error))]
    if isinstance(error, PermissionDenied):
        # A token for another platform names the platform; a token of the wrong kind, itself.
        field = "submission.platform" if isinstance(error, PlatformNotAllowed) else "token"
        return [FieldViolation(field, str(error))]
    if isinstance(error, Conflict | Unprocessable | TooManyRequests) and error.code:
        return [FieldViolation("submission", f"{error.code}: {error}")]
    return [FieldViolation("request_id", str(error))]
