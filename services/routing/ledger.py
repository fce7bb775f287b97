"""Changing a case: check the step against its state, append once, then announce it.

Every change goes through :meth:`CaseLedger.change`: read the case (its view, by ``_id``), let
the step decide on that state, insert its record with the next sequence number. When another
change (another agent, another routing instance, a timer) landed first, the insert fails on the
unique ``_id``; the ledger then catches up from the records after the view (by ``_id``) and the
step is checked again: a claim then sees the case claimed, a timer sees its work done.

After the insert the record's events are published, and only then is the view saved: a view at
version ``n`` means the events of every record up to ``n`` went out. A writer that dies in
between leaves records beyond the view; whoever touches the case next (a step whose insert
fails, an instance starting up or taking over the case's partition) finds them, publishes their
events again under the same ids (every consumer deduplicates) and saves the view.

The board (``services.routing.board``) learns every state this ledger writes or reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from opentelemetry.trace import Span

from appeals import vocabulary
from appeals_runtime import tracing
from appeals_runtime.errors import NotFound, TransientError
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.producer import EventProducer
from services.routing import announcements, case_rules
from services.routing.board import CaseBoard
from services.routing.model import CaseRecord, CaseState, Kind, Status
from services.routing.repository import RoutingRepository

# Changes to one case rarely race; a step that keeps losing signals a hot case, not a bug.
MAX_ATTEMPTS = 8

Step = Callable[[CaseState], CaseRecord | None]

log = logging.getLogger(__name__)


class CaseLedger:
    def __init__(
        self,
        repository: RoutingRepository,
        producer: EventProducer,
        board: CaseBoard,
        *,
        service_name: str,
    ) -> None:
        self._repository = repository
        self._producer = producer
        self._board = board
        self._service_name = service_name

    async def state(self, appeal_id: str) -> CaseState | None:
        """The case as its view says (the records when it has none yet: a writer died before
        saving the first view)."""
        view = await self._repository.view(appeal_id)
        if view is not None:
            return view
        return case_rules.fold(await self._repository.records(appeal_id))

    async def open(self, routed: CaseRecord) -> tuple[CaseState, bool]:
        """Start a case; False when it had started before. Idempotent: a redelivered submission
        finds the case and announces what was recorded then, even if the policy changed since."""
        created = await self._repository.append(routed)
        if created:
            state = case_rules.apply(None, routed)
            await self._repository.opened(routed.appeal_id, routed.at)
            await self._settle(routed, state, state)
            return state, True
        # Announce the routed record again: this redelivery may follow a crash before it was.
        first = await self._repository.record(routed.appeal_id, 1)
        assert first is not None
        opened = case_rules.apply(None, first)
        await self._repository.opened(first.appeal_id, first.at)
        await self._announce(first, opened)
        caught_up = await self.catch_up(first.appeal_id)
        assert caught_up is not None
        if caught_up.final:
            await self._repository.closed(caught_up.appeal_id)  # it was listed again just above
        return caught_up, False

    async def change(
        self, appeal_id: str, step: Step, *, known: CaseState | None = None
    ) -> tuple[CaseState, CaseRecord | None]:
        """Apply ``step`` once; returns the case after it and the record (None: nothing to do).

        ``known``, a state the caller just read, saves the first read; if it is out of date,
        the insert fails and the step is checked again on the case caught up. Errors the step
        raises (Conflict, PermissionDenied, ...) reach the caller unchanged.
        """
        state = known
        for _ in range(MAX_ATTEMPTS):
            if state is None:
                state = await self.state(appeal_id)
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
            state = await self.catch_up(appeal_id)
        raise TransientError(f"case {appeal_id} is changing too fast; retry")

    async def catch_up(self, appeal_id: str) -> CaseState | None:
        """The case with every record its view lacks folded in, their events published again
        (their writer may have died before it could) and the view saved."""
        view = await self._repository.view(appeal_id)
        after = await self._repository.records_after(appeal_id, view.version if view else 0)
        state: CaseState | None = view
        for record in after:
            state = case_rules.apply(state, record)
            with self._in_appeal_trace(state, record):
                await self._announce(record, state)
        if state is not None and after:
            log.info(
                "case caught up with its records",
                extra={"appeal_id": appeal_id, "records": len(after), "version": state.version},
            )
            await self._save(state)
        elif state is not None:
            self._board.put(state)
        return state

    async def verify(self, seen: CaseState) -> CaseState | None:
        """The case as stored now, for a state the board held (the board learns it too)."""
        state = await self.state(seen.appeal_id)
        if state is not None:
            self._board.put(state)
        return state

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
            platform=vocabulary.platform_name(state.routing.platform),
            queue=state.queue,
        )

    async def _settle(self, record: CaseRecord, after_record: CaseState, latest: CaseState) -> None:
        await self._announce(record, after_record)
        await self._save(latest)

    async def _announce(self, record: CaseRecord, after_record: CaseState) -> None:
        self._board.announcing(record.appeal_id, record.seq)
        version = [(h.CASE_VERSION, h.text(record.seq))]
        for outbound in announcements.messages_for(
            record, after_record, producer=self._service_name
        ):
            await self._producer.publish(outbound.topic, outbound.message, headers=version)

    async def _save(self, state: CaseState) -> None:
        await self._repository.save_view(state)
        self._board.put(state)
        if state.final:
            await self._repository.closed(state.appeal_id)
        # The live set of referrals: listed while the body decides, gone once it has.
        if state.status == Status.REFERRED:
            await self._repository.referral_opened(state)
        elif state.referral is not None:
            await self._repository.referral_answered(state.appeal_id)
