"""Group commit: every event handed over while a write is in flight goes into the next one.

The consumer handles many records at once (different appeals side by side), and each needs the
next slot at the log's tail. Appended one by one they would race each other for that slot, and
every lost race costs reads and a retry. Instead a caller hands its event to the :class:`Appender`
and waits; the appender takes everything handed over since its last write, gives it consecutive
slots and writes it with one ordered bulk insert, then records each event's slot
(``audit_events``) in one more write and the appeals' entries (``audit_appeal_entries``) in one
more, and only then resolves each caller. So the store work per event stays a constant, whatever the
log holds, and a batch costs three or four round trips however many events it carries.

Every guarantee of appending one event at a time is kept:

* **one entry per event id.** The unique ``event_id`` refuses a second entry. The ordered insert
  stops at the refused event, which is then answered "logged before" (its slot looked up in
  ``audit_events``), and the rest of the batch goes on from the same slot;
* **contiguous slots.** An ordered insert writes slot after slot and stops at the first refusal;
  nothing after it is written, so no gap is ever left (verification treats a gap as tampering);
* **another instance appending at the same time.** Slots are claimed by the unique ``_id``: when
  the insert stops at a slot another instance took, the appender finds the first free slot after
  it (gallop and bisect by ``_id``) and goes on from there;
* **per-appeal order.** The consumer runner hands over one appeal's events one after another, each
  after the previous was answered, so they land in successive batches; events handed over
  together keep the order in which they were handed over.

A write that fails fails every caller of that batch (the consumer retries them, and appending is
idempotent, so whatever part of the batch was written is found again). An error that is not
transient is tried again event by event, so one bad event cannot take its whole batch with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from appeals_runtime.errors import TransientError
from services.audit.log import entries
from services.audit.log.appeal_index import IndexedEntry
from services.audit.log.records import IndexFacts
from services.audit.log.repository import Appended, LogRepository

log = logging.getLogger(__name__)

# Events written per batch at most (the consumer has up to 200 records in flight).
MAX_BATCH = 500
# Slots lost to other instances in a row before the batch is handed back to the callers'
# backoff: contention this long means a store in trouble, not a race.
MAX_LOST_RACES = 50

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Append:
    """An event to log, and what its appeal's document should learn from it."""

    event: entries.LoggedEvent
    facts: IndexFacts
    trace_id: str | None = None


class Appender:
    def __init__(
        self, log: LogRepository, *, clock: Clock | None = None, max_batch: int = MAX_BATCH
    ) -> None:
        self._log = log
        self._clock = clock or (lambda: datetime.now(UTC))
        self._max_batch = max_batch
        self._waiting: list[tuple[Append, asyncio.Future[Appended]]] = []
        self._writer: asyncio.Task[None] | None = None
        # Set whenever new entries were written; the checkpointer waits on it and clears it.
        self.grown = asyncio.Event()

    async def append(
        self,
        event: entries.LoggedEvent,
        facts: IndexFacts | None = None,
        *,
        trace_id: str | None = None,
    ) -> Appended:
        """Log ``event`` once (and index it under its appeal, if it has one); returns its slot
        and whether it is new. Resolves once the entry, its slot and its index are written."""
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._waiting.append((Append(event, facts or IndexFacts(), trace_id), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(), name="audit-appender")
        return await future

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: len(batch)]
            # A caller that gave up (shutdown) is left out; its event comes again if need be.
            batch = [(request, future) for request, future in batch if not future.done()]
            if batch:
                await self._settle(batch)

    async def _settle(self, batch: list[tuple[Append, asyncio.Future[Appended]]]) -> None:
        try:
            outcomes = await self.write([request for request, _ in batch])
        except TransientError as error:
            for _, future in batch:
                _fail(future, TransientError(str(error)))
            return
        except Exception as error:
            if len(batch) > 1:
                log.warning("batch append failed; appending its events one by one",
                            extra={"events": len(batch), "error": repr(error)})  # fmt: skip
                for one in batch:
                    await self._settle([one])
                return
            _fail(batch[0][1], error)
            return
        except BaseException as error:  # cancelled: nobody may wait for ever
            for _, future in batch:
                _fail(future, TransientError(f"append interrupted: {error!r}"))
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def write(self, requests: list[Append]) -> list[Appended]:
        """Write one batch: entries, their slots, their appeals' index; an outcome per request."""
        outcomes: dict[str, Appended] = {}
        first_of: dict[str, Append] = {}  # each event once, in the order first handed over
        for request in requests:
            first_of.setdefault(request.event.event_id, request)
        pending = list(first_of.values())
        unknown = await self._insert(pending, outcomes)
        recovered: dict[str, int] = {}
        if unknown:
            known = await self._log.slots_of(unknown)
            missing = [event_id for event_id in unknown if event_id not in known]
            if missing:
                # Entries whose slot was never recorded: their delivery stopped between the two
                # writes (a crash), or another instance wrote them a moment ago.
                recovered = await self._log.slots_by_scan(missing)
                known |= recovered
            for event_id in unknown:
                outcomes[event_id] = Appended(known.get(event_id), new=False)
        new_slots = {e: a.index for e, a in outcomes.items() if a.new and a.index is not None}
        await self._log.remember_slots(new_slots | recovered)
        await self._log.index_entries(
            [
                IndexedEntry(
                    appeal_id=request.event.appeal_id,
                    index=index,
                    event_id=request.event.event_id,
                    kind=request.event.type,
                    facts=request.facts,
                    trace_id=request.trace_id,
                )
                for request in pending
                if request.event.appeal_id
                and (index := outcomes[request.event.event_id].index) is not None
            ]
        )
        if new_slots:
            self.grown.set()
        answered: set[str] = set()
        results = []
        for request in requests:
            outcome = outcomes[request.event.event_id]
            # An event handed over twice in one batch is new to the first caller only.
            results.append(outcome if request.event.event_id not in answered else
                           Appended(outcome.index, new=False))  # fmt: skip
            answered.add(request.event.event_id)
        return results

    async def _insert(self, pending: list[Append], outcomes: dict[str, Appended]) -> list[str]:
        """Insert ``pending`` at consecutive free slots; fills ``outcomes`` and returns the event
        ids the log refused as logged before without saying where."""
        unknown: list[str] = []
        looked_up = False
        slot = await self._log.expected_next()
        lost = 0
        while pending:
            recorded_at = self._clock()
            documents = [
                entries.new_entry(request.event, index=slot + n, recorded_at=recorded_at)
                for n, request in enumerate(pending)
            ]
            inserted = await self._log.insert_entries(documents)
            for n, request in enumerate(pending[:inserted]):
                outcomes[request.event.event_id] = Appended(slot + n, new=True)
            slot += inserted
            self._log.note_tail(slot)
            pending = pending[inserted:]
            if not pending:
                break
            refused = pending[0].event.event_id
            occupant = await self._log.occupant(slot)
            if occupant is None:
                # The slot is free, so the unique event id refused the entry: logged before.
                unknown.append(refused)
                pending = pending[1:]
                if not looked_up:
                    # Redeliveries come in runs (a restart, a rebalance): look the rest of the
                    # batch up at once rather than stopping the insert at each of them.
                    looked_up = True
                    known = await self._log.slots_of(r.event.event_id for r in pending)
                    for event_id, index in known.items():
                        outcomes[event_id] = Appended(index, new=False)
                    pending = [r for r in pending if r.event.event_id not in known]
            elif occupant == refused:
                # Another delivery of this very event (another instance) took this slot.
                outcomes[refused] = Appended(slot, new=False)
                pending = pending[1:]
                slot += 1
            else:
                lost += 1
                if lost >= MAX_LOST_RACES:
                    raise TransientError(
                        f"could not append {len(pending)} events to the audit log: "
                        f"{MAX_LOST_RACES} inserts in a row lost the race for the tail"
                    )
                slot = await self._log.first_free(slot + 1)
        return unknown


def _fail(future: asyncio.Future[Appended], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
