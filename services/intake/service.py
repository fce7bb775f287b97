"""Taking in appeals: the one submit path behind REST, gRPC and Kafka requests, and look-ups.

Order of a submit, and why:
1. authenticate, check scope, validate, check limits and eligibility: nothing is written for a
   request that will be refused;
2. reserve the idempotency key (unique ``_id``) with a fresh appeal id: a retry finds the id, a
   concurrent duplicate gets 409, a different body with the same key gets 422, a replay is
   answered from the appeal's acknowledged mark. Alone and first, so that only the one
   request that holds the key goes on (a duplicate never touches the item's slot);
3. at once, as they are independent: hold the (appellant, item) open-appeal slot (unique
   ``_id``), record the appeal, not yet acknowledged, look up ban-evasion identifiers (only
   when the request carries any) and the appellant's pseudonym (an insert that makes one for a
   first appeal; see ``appellants``). The record holds the appellant's personal data, which no event
   carries, so it must exist before any service can see the event and ask for it. A second open
   appeal gets 409 naming the first; whatever this attempt took is then given back;
4. publish the submitted event (facts and pseudonym only) and wait for the broker's
   acknowledgement: only now is the appeal accepted (a broker failure surfaces as 503: the slot
   is given back and the key marked failed, so the caller may retry with the same key at once
   and a request with another key about the same item is not refused);
5. mark the appeal acknowledged (an insert of its own), with the ban-evasion flag: look-ups
   show it from now on, and a request with the same key and body is answered with it.
That is three store round trips in a row (2, 3, 5) and one publish.
A crash between 3 and 5 is safe: the retry takes over the reservation after the in-flight window,
finds the record and the slot and republishes the same event id, which every consumer
deduplicates; the status projection marks an appeal acknowledged when its submitted event comes
by, should the crash (or a store refusing the mark) have come after the broker's acknowledgement.
A slot held past the in-flight window by an appeal never acknowledged is taken over by the next
request about the item: nothing else would free what a crashed submit left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from appeals import topics, vocabulary
from appeals.events import new_event
from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2, events_pb2, intake_pb2
from appeals_runtime import store, tracing
from appeals_runtime.auth import PermissionDenied, Principal, Role, Scope, Unauthenticated
from appeals_runtime.errors import (
    Conflict,
    FieldViolation,
    NotFound,
    TooManyRequests,
    TransientError,
    Unprocessable,
    ValidationFailed,
)
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import RateLimiter
from services.intake import eligibility, identity, metrics, validation
from services.intake.erasure import Erasures
from services.intake.model import AppealRecord, without_particulars
from services.intake.received_index import Page
from services.intake.repository import IntakeRepository

log = logging.getLogger(__name__)

# The listing of acknowledged appeals: at most this long a window, this many per page.
MAX_LISTING_WINDOW = timedelta(days=31)
MAX_LISTING_PAGE = 5000
CURSOR_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\|[A-Za-z0-9_.:-]{1,128}$"
_CURSOR = re.compile(CURSOR_PATTERN)


P = ParamSpec("P")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")


def _counting_rejections(
    submit: Callable[P, Awaitable[Accepted]],
) -> Callable[P, Awaitable[Accepted]]:
    """Count every refused submission by reason and channel (``appeals.intake.rejected``)."""

    @functools.wraps(submit)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> Accepted:
        try:
            return await submit(*args, **kwargs)
        except Exception as error:
            count_rejection(error, channel=str(kwargs.get("channel", "")))
            raise

    return counted


def count_rejection(error: BaseException, *, channel: str) -> None:
    metrics.rejected.add(1, {"reason": rejection_reason(error), "channel": channel})


def rejection_reason(error: BaseException) -> str:
    """The ``reason`` label of a refused submission: a short, bounded vocabulary."""
    if isinstance(error, ValidationFailed):
        return "invalid"
    if isinstance(error, (Unprocessable, Conflict)):
        return error.code or type(error).__name__.lower()
    if isinstance(error, TooManyRequests):
        return "rate_limited"
    if isinstance(error, (PermissionDenied, Unauthenticated)):
        return "forbidden"
    if isinstance(error, TransientError):
        return "unavailable"
    return "error"


@dataclass(frozen=True)
class Accepted:
    appeal_id: str
    status: str = "received"

    def as_response(self) -> dict[str, Any]:
        return {"appeal_id": self.appeal_id, "status": self.status}


@dataclass(frozen=True)
class _Reserved:
    """The idempotency key is held for ``appeal_id``: by this request (fresh) or taken over."""

    appeal_id: str
    fresh: bool


class AcknowledgedHere:
    """Appeals this process is marking, or marked, acknowledged whose submitted event the status
    projection has not seen yet: for those, the projection's own mark (which covers a crash
    between the broker's acknowledgement and the mark) has nothing to do and costs no store
    write. The projection often sees the event while the submit's mark is still on its way to
    the store, so it waits for that write's outcome rather than racing it with a second one.
    Another intake instance, or this one after a restart, does not find an appeal here and marks
    it in the store, a no-op when it was marked. Entries leave when the projection takes them,
    so only appeals in flight are held; the bound only matters when the projection lags far
    behind.
    """

    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        self._marks: OrderedDict[str, asyncio.Future[bool]] = OrderedDict()

    @contextlib.contextmanager
    def marking(self, appeal_id: str) -> Iterator[None]:
        """Around the submit's own mark: the projection learns whether it was written (an
        error, or a cancelled request, leaves the mark to the projection)."""
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._marks[appeal_id] = outcome
        while len(self._marks) > self._limit:
            self._marks.popitem(last=False)
        try:
            yield
        except BaseException:
            outcome.set_result(False)
            raise
        outcome.set_result(True)

    async def take(self, appeal_id: str) -> bool:
        """Whether this process marked ``appeal_id`` (each appeal is taken once)."""
        outcome = self._marks.pop(appeal_id, None)
        # Shielded: a projection cancelled while waiting must not cancel the submit's outcome.
        return outcome is not None and await asyncio.shield(outcome)


@dataclass(frozen=True)
class IntakePolicy:
    rules: eligibility.EligibilityRules
    limiter: RateLimiter
    pseudonym_key: bytes
    key_ttl: timedelta = timedelta(hours=24)
    in_flight: timedelta = timedelta(seconds=30)


class AppealIntake:
    def __init__(
        self,
        repository: IntakeRepository,
        producer: EventProducer,
        policy: IntakePolicy,
        *,
        service_name: str = "intake",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repository = repository
        self._producer = producer
        self._policy = policy
        self._service_name = service_name
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())
        self.acknowledged_here = AcknowledgedHere()
        self.erasures = Erasures(
            repository, producer, policy.pseudonym_key, clock=self._clock,
            service_name=service_name,
        )  # fmt: skip

    @_counting_rejections
    async def submit(
        self,
        principal: Principal,
        submission: appeal_pb2.AppealSubmission,
        *,
        idempotency_key: str | None,
        key_field: str,
        channel: str,
    ) -> Accepted:
        """Validate, check eligibility and limits, publish: the one submit flow of every channel."""
        principal.require(Scope.SUBMIT, role=Role.SURFACE)
        now = self._clock()
        validation.ensure_valid(
            validation.idempotency_key_violations(key_field, idempotency_key)
            + validation.submission_violations(submission, now=now)
        )
        validation.ensure_plausible(validation.implausibilities(submission, now=now))
        platform = vocabulary.platform_name(submission.platform)
        principal.require_platform(platform)
        self._check_rate(principal, submission)
        refusal = eligibility.check(submission, self._policy.rules, now=now)
        if refusal is not None:
            raise Unprocessable(refusal.detail, code=refusal.code)
        assert idempotency_key is not None  # checked by the validation above
        scope = identity.idempotency_scope(principal.subject, idempotency_key)
        fingerprint = identity.fingerprint(submission)

        reserved = await self._reserve(scope, fingerprint, now)
        if isinstance(reserved, Accepted):
            return reserved  # the answer the first request with this key was given
        appeal_id = reserved.appeal_id
        record = AppealRecord(appeal_id, principal.subject, submission, "received", now, now,
                              acknowledged=False)  # fmt: skip
        event_id = identity.submitted_event_id(appeal_id)
        suspected, pseudonym = await self._open(scope, reserved, record)
        event = new_event(
            event_id=event_id,
            appeal_id=appeal_id,
            producer=self._service_name,
            occurred_at=now,
            submitted=events_pb2.AppealSubmitted(
                facts=submission_facts(submission),
                channel=channel,
                surface=principal.subject,
                ban_evasion_suspected=suspected,
                appellant_pseudonym=pseudonym,
            ),
        )
        tracing.annotate(appeal_id, platform=platform)
        try:
            await self._producer.publish(topics.APPEAL_LIFECYCLE, event)
        except Exception:
            await self._unpublished(scope, appeal_id, identity.open_appeal_slot(submission), now)
            raise
        accepted = Accepted(appeal_id)
        try:
            with self.acknowledged_here.marking(appeal_id):
                await self._repository.acknowledge(appeal_id, ban_evasion_suspected=suspected)
        except TransientError:
            # The broker has the appeal, so it is accepted; the status projection sets the mark
            # when the submitted event comes by (until then look-ups answer 404 and a retry 409).
            log.warning("appeal accepted but not yet marked acknowledged",
                        extra={"appeal_id": appeal_id}, exc_info=True)  # fmt: skip
        metrics.received.add(1, {"platform": platform, "channel": channel})
        if suspected:
            metrics.flagged.add(1, {"platform": platform})
        log.info(
            "appeal accepted",
            extra={"appeal_id": appeal_id, "platform": platform, "channel": channel,
                   "ban_evasion_suspected": suspected},
        )  # fmt: skip
        return accepted

    def _check_rate(self, principal: Principal, submission: appeal_pb2.AppealSubmission) -> None:
        signals = submission.signals
        wait = self._policy.limiter.acquire(
            [
                ("surface", principal.subject),
                ("appellant", f"{submission.platform}:{submission.appellant.user_id}"),
                ("device", signals.device_hint),
                ("network", signals.network_hint),
            ]
        )
        if wait is not None:
            raise TooManyRequests(
                "too many appeals from this appellant, device, network or surface; "
                "nothing was accepted",
                code="rate_limited",
                retry_after_s=wait,
            )

    async def _reserve(self, scope: str, fingerprint: str, now: datetime) -> Accepted | _Reserved:
        """Step 2: the key reserved for a fresh appeal id, or taken over with the id of an
        attempt that died, or the answer to replay; raises 422 or 409 for the key."""
        appeal_id = identity.new_appeal_id()
        earlier = await self._repository.reserve_key(
            scope, fingerprint, appeal_id, now, self._policy.key_ttl
        )
        if earlier is None:
            return _Reserved(appeal_id, fresh=True)
        if earlier.fingerprint != fingerprint:
            raise Unprocessable(
                "this idempotency key was already used for a different request; "
                "use a new key for a new appeal",
                code="idempotency_key_reused",
            )
        if earlier.response is not None:  # stored by earlier versions
            return Accepted(**earlier.response)
        if await self._repository.is_acknowledged(earlier.appeal_id):
            return Accepted(earlier.appeal_id)
        age = now - earlier.reserved_at
        if age < self._policy.in_flight and not earlier.failed:
            raise Conflict(
                "a request with this idempotency key is still being processed",
                code="request_in_flight",
                retry_after_s=(self._policy.in_flight - age).total_seconds(),
            )
        # The first attempt died before answering: continue it with the same appeal id, so
        # what it may already have published is the same event.
        return _Reserved(earlier.appeal_id, fresh=False)

    async def _open(
        self, scope: str, reserved: _Reserved, record: AppealRecord
    ) -> tuple[bool, str]:
        """Step 3: hold the item's slot and record the appeal; whether it is linked to ban
        evasion, and the appellant's pseudonym. Raises 409 naming the open appeal about the
        same item."""
        submission = record.submission
        slot = identity.open_appeal_slot(submission)
        appeal_id = record.appeal_id
        appellant = identity.appellant_key(
            self._policy.pseudonym_key, submission.platform, submission.appellant.user_id
        )
        claimed, inserted, linked, named = await asyncio.gather(
            self._repository.claim_open_slot(
                slot, appeal_id, record.received_at, abandoned_after=self._policy.in_flight
            ),
            # A retry taking over finds the record of its first attempt (the same submission).
            self._repository.insert_appeal(record, open_slot=slot),
            self._repository.linked_to_evasion(list(submission.signals.linked_account_hashes)),
            self._repository.appellants.pseudonym_for(appellant, record.received_at),
            return_exceptions=True,
        )
        try:
            holder, _, suspected, pseudonym = _results(claimed, inserted, linked, named)
            if holder != appeal_id:
                raise Conflict(
                    f"appeal {holder} about this item is still open; it will be answered first",
                    code="appeal_already_open",
                    open_appeal_id=holder,
                )
        except BaseException as error:
            # Nothing was published: give back what this attempt took, so that the key (and,
            # for a fresh attempt, the slot) are free for the next request. A taken-over attempt
            # keeps its slot: its first attempt may have published already.
            if inserted is True:
                await _quietly(self._repository.forget_appeal(appeal_id))
            if reserved.fresh and claimed == appeal_id:
                await _quietly(self._repository.release_open_slot(slot, appeal_id))
            if reserved.fresh or isinstance(error, Conflict):
                await _quietly(self._repository.forget_key(scope, appeal_id))
            raise
        return suspected, pseudonym

    async def _unpublished(self, scope: str, appeal_id: str, slot: str, now: datetime) -> None:
        """Step 4 failed and the caller is told 503: free the item's slot, so a new request
        about it is not refused in the name of an appeal nobody can see, and let a retry with
        the same key continue at once. The key keeps its appeal id and the record stays: the
        event may have reached the broker although the acknowledgement did not come back, and
        the retry then publishes the same event id, which every consumer deduplicates."""
        await _quietly(self._repository.release_open_slot(slot, appeal_id))
        await _quietly(self._repository.fail_key(scope, appeal_id, now))

    async def get(self, principal: Principal, appeal_id: str) -> AppealRecord:
        principal.require(Scope.READ)
        record = await self._repository.get_appeal(appeal_id)
        # Not acknowledged: the broker never confirmed it (the surface was told 503), or it did
        # and the mark is still to be set by the status projection. Another platform's appeal
        # is answered the same way: a surface learns nothing of appeals that are not its own.
        if record is None or not record.acknowledged or not principal.acts_for(record.platform):
            raise NotFound(f"no appeal {appeal_id}")
        if principal.role != Role.SURFACE:
            # Ops see the status and the facts; the person's particulars are the surface's
            # (which submitted them) and the pipeline's services' alone.
            return dataclasses.replace(
                record, submission=without_particulars(record.submission), information=[]
            )
        return record

    async def received(
        self,
        principal: Principal,
        since: datetime,
        until: datetime,
        *,
        cursor: str | None,
        limit: int,
    ) -> Page:
        """The appeals acknowledged with a reception time in ``[since, until)``, a page at a time
        (ops: reconciliation compares them with the audit log)."""
        principal.require(Scope.READ, role=Role.OPS)
        violations = []
        if since.tzinfo is None or until.tzinfo is None:
            violations.append(FieldViolation("received_after", "needs a UTC offset"))
        if cursor and not _CURSOR.match(cursor):
            violations.append(FieldViolation("cursor", "is not a cursor this listing gave"))
        if not 1 <= limit <= MAX_LISTING_PAGE:
            violations.append(FieldViolation("limit", f"must be 1 to {MAX_LISTING_PAGE}"))
        if violations:
            raise ValidationFailed(violations)
        # Well-formed, but not a window this listing serves (422, as the schema cannot say it).
        if not since < until:
            raise Unprocessable("received_before must be after received_after", code="empty_window")
        if until - since > MAX_LISTING_WINDOW:
            raise Unprocessable("the window may span at most 31 days", code="window_too_long")
        return await self._repository.received.page(since, until, cursor=cursor, limit=limit)

    async def provide_information(
        self,
        principal: Principal,
        appeal_id: str,
        *,
        answer: str,
        attachments: list[appeal_pb2.Attachment],
    ) -> str:
        """The appellant's answer to the open request for information, through their surface:
        kept here (it is personal data), then announced (``info_provided``, no content) so the
        case returns to its queue. Accepted once the broker acknowledged; a retry after that
        publishes the same event again. Returns the id of the request answered."""
        principal.require(Scope.SUBMIT, role=Role.SURFACE)
        record = await self.get(principal, appeal_id)
        validation.ensure_valid(validation.information_violations(answer, attachments))
        request = record.info_request
        if record.status != "awaiting_information" or request is None:
            raise Conflict(
                f"appeal {appeal_id} is not waiting for information (status {record.status})",
                code="not_awaiting_information",
            )
        now = self._clock()
        exchange = appeal_pb2.InformationExchange(
            request_event_id=request.request_event_id,
            question=request.question,
            answer=answer.strip(),
            attachments=attachments,
        )
        exchange.answered_at.FromDatetime(now)
        await self._repository.record_information(appeal_id, exchange)
        event = new_event(
            event_id=identity.info_provided_event_id(appeal_id, request.request_event_id),
            appeal_id=appeal_id,
            producer=self._service_name,
            causation_id=request.request_event_id,
            occurred_at=now,
            info_provided=events_pb2.InformationProvided(
                request_event_id=request.request_event_id, attachment_count=len(attachments)
            ),
        )
        tracing.annotate(appeal_id, platform=record.platform)
        await self._producer.publish(topics.APPEAL_LIFECYCLE, event)
        log.info("information provided", extra={"appeal_id": appeal_id,
                                                "attachments": len(attachments)})  # fmt: skip
        return request.request_event_id

    async def particulars(
        self, principal: Principal, appeal_id: str
    ) -> intake_pb2.AppealParticulars:
        """The appellant's personal data, for the pipeline's own services only.

        Served as soon as the record exists, acknowledged or not: a consumer may see the
        submitted event before intake has marked the appeal acknowledged.
        """
        principal.require(Scope.READ_PARTICULARS, role=Role.SERVICE)
        record = await self._repository.particulars_record(appeal_id)
        if record is None:
            raise NotFound(f"no appeal {appeal_id}")
        # Who read whose data is logged; the data itself never is.
        log.info("appeal particulars read", extra={"appeal_id": appeal_id,
                                                   "reader": principal.subject})  # fmt: skip
        return record.particulars()

    async def add_evasion_identifiers(self, principal: Principal, hashes: list[str]) -> int:
        """Ops record identifiers of accounts removed for ban evasion (keyed hashes)."""
        principal.require(Scope.READ, role=Role.OPS)
        return await self._repository.add_evasion_identifiers(hashes, self._clock())

    async def flush_key_expiries(self) -> int:
        """Write down when the keys reserved lately expire (see ``appeals_runtime.expiries``)."""
        return await self._repository.flush_key_expiries(self._clock())

    async def sweep_expired_keys(self) -> int:
        return await self._repository.sweep_expired_keys(self._clock())


def _results(
    first: A | BaseException,
    second: B | BaseException,
    third: C | BaseException,
    fourth: D | BaseException,
) -> tuple[A, B, C, D]:
    """The results of operations gathered with ``return_exceptions``, or the first error among
    them, raised as it is (never as a group: a TransientError must still be answered 503)."""
    if isinstance(first, BaseException):
        raise first
    if isinstance(second, BaseException):
        raise second
    if isinstance(third, BaseException):
        raise third
    if isinstance(fourth, BaseException):
        raise fourth
    return first, second, third, fourth


async def _quietly(cleanup: Awaitable[None]) -> None:
    """Undo what a refused or failed submit took; failing to is logged, never raised over the
    answer (a reservation left behind is taken over or expires; a slot is freed by a retry)."""
    try:
        await cleanup
    except Exception:
        log.warning("could not give back what a refused submit had taken", exc_info=True)
