"""Changing a case: check the step against its records, append once, then announce it.

Every change goes through :meth:`CaseLedger.change`: read the case's records, let the step decide
on the state they fold to, append its record with the next sequence number. When another change
(another agent, another routing instance, a timer) landed first, the insert fails on the unique
``_id`` and the step is checked again against the new state: a claim then sees the case claimed,
a timer sees its work done. After the append, the view is refreshed and the record's events are
published; a record is marked published only after the broker acknowledged them, and the timer
republishes what a dead instance left unpublished (same event ids: consumers deduplicate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from opentelemetry.trace import Span

from appeals_runtime import tracing, vocabulary
from appeals_runtime.errors import NotFound, TransientError
from appeals_runtime.kafka.producer import EventProducer
from services.routing import announcements, case_rules
from services.routing.model import CaseRecord, CaseState, Kind
from services.routing.repository import RoutingRepository

# Changes to one case rarely race; a step that keeps losing signals a hot case, not a bug.
MAX_ATTEMPTS = 8

Step = Callable[[CaseState], CaseRecord | None]

log = logging.getLogger(__name__)


class CaseLedger:
    def __init__(
        self, repository: RoutingRepository, producer: EventProducer, *, service_name: str
    ) -> None:
        self._repository = repository
        self._producer = producer
        self._service_name = service_name

    async def state(self, appeal_id: str) -> CaseState | None:
        return case_rules.fold(await self._repository.records(appeal_id))

    async def open(self, routed: CaseRecord) -> tuple[CaseState, bool]:
        """Start a case; False when it had started before. Idempotent: a redelivered submission
        finds the case and announces what was recorded then, even if the policy changed since."""
        created = await self._repository.append(routed)
        records = await self._repository.records(routed.appeal_id)
        state = case_rules.fold(records)
        assert state is not None
        await self._settle(records[0], case_rules.fold(records[:1]), state, force_publish=True)
        return state, created

    async def change(
        self, appeal_id: str, step: Step, *, known: CaseState | None = None
    ) -> tuple[CaseState, CaseRecord | None]:
        """Apply ``step`` once; returns the case after it and the record (None: nothing to do).

        ``known``, a state the caller just read from the records, saves the first read; if it is
        out of date, the append fails and the step is checked again on a fresh read. Errors the
        step raises (Conflict, PermissionDenied, ...) reach the caller unchanged.
        """
        for _ in range(MAX_ATTEMPTS):
            state, known = known or await self.state(appeal_id), None
            if state is None:
                raise NotFound(f"no case {appeal_id}")
            record = step(state)
            if record is None:
                return state, None
            with self._in_appeal_trace(state, record):
                if await self._repository.append(record):
                    after = case_rules.apply(state, record)
                    await self._settle(record, after, after)
                    return after, record
        raise TransientError(f"case {appeal_id} is changing too fast; retry")

    async def republish(self, record: CaseRecord) -> None:
        """Publish the events of a record whose writer may have died before it could."""
        records = await self._repository.records(record.appeal_id)
        upto = case_rules.fold(r for r in records if r.seq <= record.seq)
        latest = case_rules.fold(records)
        if upto is None or latest is None:
            return
        with self._in_appeal_trace(latest, record):
            await self._settle(record, upto, latest, force_publish=True)

    @staticmethod
    def _in_appeal_trace(
        state: CaseState, record: CaseRecord
    ) -> AbstractContextManager[Span | None]:
        """Steps triggered outside the appeal's trace (an agent's RPC, a timer) are recorded and
        announced in it, linked to what triggered them. Heartbeats announce nothing and come
        every few seconds: they stay in the agent's trace."""
        if record.kind == Kind.HEARTBEAT:
            return nullcontext()
        return tracing.appeal_span(
            f"case {record.kind.value}",
            state.routing.trace_parent,
            appeal_id=state.appeal_id,
            platform=vocabulary.platform_name(state.routing.submission.platform),
            queue=state.queue,
        )

    async def _settle(
        self,
        record: CaseRecord,
        after_record: CaseState | None,
        latest: CaseState,
        *,
        force_publish: bool = False,
    ) -> None:
        await self._repository.save_view(latest)
        if record.published and not force_publish:
            return
        assert after_record is not None
        for outbound in announcements.messages_for(
            record, after_record, producer=self._service_name
        ):
            await self._producer.publish(outbound.topic, outbound.message)
        if not record.published:
            await self._repository.mark_published(record)

    async def verify(self, seen: CaseState) -> CaseState | None:
        """The case as its records say, for a state read from the view; fixes a stale view."""
        state = await self.state(seen.appeal_id)
        if state is not None and state.version != seen.version:
            await self._repository.save_view(state)
        return state
