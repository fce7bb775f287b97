"""The log's entries and what finds them (``audit_log``, ``audit_events``, and the appeal index
``audit_appeal_entries``).

What the store answers cheaply decides the shape. FerretDB (SQLite handler, patched: see the root
README) answers a filter that names ``_id`` by value (``{_id: x}``, ``{_id: x, other: ...}``,
``{_id: {$in: [...]}}``) from its ``_id`` index; every other filter, sort, count or aggregation
scans the whole collection (about 3 ms per 1000 documents). MongoDB answers both from indexes.
So everything done per event, per request or periodically is keyed by ``_id``:

* ``audit_log``: entry ``n`` at ``_id = entry_key(n)``. Appended by the group-commit appender
  (appender.py) with ordered bulk inserts: the unique ``_id`` lets exactly one appender win a
  slot, the unique ``event_id`` refuses a second entry for an event;
* ``audit_events``: ``_id`` = event id, with the entry's slot. Written right after the entries
  (insert-only); how a redelivered event's slot and an inclusion proof by event id are found;
* ``audit_appeal_entries``: ``"<appeal id>/<n>"``, the appeal's n-th indexed entry (slot, event
  id, type, the trace the event came in, the facts it tells about the appeal); inserted once,
  never updated; an appeal's summary is folded from them when read (appeal_index.py).

Both lookups are derived from the log and never trusted for integrity: every entry a trail or a
proof shows is read from the log (and comes with an inclusion proof). Only whole-log operations
scan: verification, exports, reports, reconciliation, and a one-off migration of the old index.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import BulkWriteError

from appeals_runtime import store
from appeals_runtime.errors import TransientError
from services.audit.log import entries
from services.audit.log.appeal_index import AppealIndex, IndexedEntry, entry_document, facts_in
from services.audit.log.records import IndexFacts
from services.audit.log.writes import DUPLICATE_KEY, insert_ignoring_duplicates, write_failure

AUDIT_LOG = "audit_log"
EVENT_SLOTS = "audit_events"
# The appeal index of earlier versions, each moved into APPEAL_ENTRIES once, then dropped: one
# document per appeal updated per entry (until 7 Dec 2026), and before it one per entry.
LEGACY_APPEALS = "audit_appeals"
LEGACY_APPEAL_INDEX = "audit_appeal_index"

INDEXES = [
    # The authority for "one entry per event": a second entry for an event id is refused.
    store.IndexSpec(AUDIT_LOG, [("event_id", ASCENDING)], unique=True),
    # Exports and reports read one type of entry in a period, and the submitted entries of some
    # appeals (index lookups on MongoDB; on FerretDB these whole-log reads scan).
    store.IndexSpec(AUDIT_LOG, [("type", ASCENDING), ("occurred_at", ASCENDING)]),
    store.IndexSpec(AUDIT_LOG, [("appeal_id", ASCENDING), ("type", ASCENDING)]),
]

SCAN_BATCH_SIZE = 1000
# Slots read per $in query (checkpoint integration, subtree rebuilds, query walks).
READ_BATCH = 1000
# Old index documents moved per round trip by the one-off migrations.
MIGRATION_BATCH = 50
# A query page walks at most this many slots of the log; if it has not filled the page by then it
# answers what it found with a cursor to go on from, so no request costs more than this.
QUERY_WALK_LIMIT = 10_000
# How far an instance's clock may be behind an event producer's (or another instance's): a query
# from a time starts this much before the first entry recorded at that time.
CLOCK_SKEW_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Appended:
    # The entry's index; None when the event was logged before and its slot cannot be found.
    index: int | None
    new: bool


@dataclass(frozen=True)
class AppealPage:
    appeals: list[store.Document]
    # Where the next page starts (a slot of the log); None once the walk reached the log's end.
    next_cursor: int | None


class LogRepository:
    def __init__(self, db: store.Database) -> None:
        self._db = db
        self._log = db[AUDIT_LOG]
        self._slots = db[EVENT_SLOTS]
        self.appeal_index = AppealIndex(db)
        # The next slot this instance expects to be free; found by galloping on first use.
        self._next: int | None = None
        # Slots below a signed checkpoint are never appended to, whatever the store says.
        self._floor = 0

    # The tail ---------------------------------------------------------------------------------

    def raise_floor(self, size: int) -> None:
        self._floor = max(self._floor, size)

    def note_tail(self, next_free: int) -> None:
        """Entries up to ``next_free`` exist (this instance just wrote them)."""
        self._next = max(self._next or 0, next_free)

    async def expected_next(self) -> int:
        """Where this instance's next append starts: after its last one, above the floor."""
        if self._next is None:
            self._next = await self.first_free(self._floor)
        return max(self._next, self._floor)

    async def occupant(self, index: int) -> str | None:
        """The event id of the entry at ``index``; None when the slot is free."""
        found = await store.available(
            self._log.find_one({"_id": entries.entry_key(index)}, {"event_id": 1})
        )
        return None if found is None else str(found.get("event_id"))

    async def exists(self, index: int) -> bool:
        found = await store.available(
            self._log.find_one({"_id": entries.entry_key(index)}, {"_id": 1})
        )
        return found is not None

    async def first_free(self, start: int) -> int:
        """The first empty slot at or after ``start``: gallop forward, then bisect.

        Assumes the slots before ``start`` are taken and the log is contiguous (appends never
        skip a slot; a gap is tampering, which verification reports). O(log distance) lookups.
        """
        if not await self.exists(start):
            return start
        taken, step = start, 1
        while await self.exists(taken + step):
            taken += step
            step *= 2
        free = taken + step
        while free - taken > 1:
            middle = (taken + free) // 2
            if await self.exists(middle):
                taken = middle
            else:
                free = middle
        return free

    async def size(self) -> int:
        """How many entries the log holds (its first free slot), galloping from the known tail."""
        found = await self.first_free(max(self._next or 0, self._floor))
        self.note_tail(found)  # never back: the appender may have written past it meanwhile
        return found

    # Appending (the appender's primitives) ------------------------------------------------------

    async def insert_entries(self, documents: Sequence[store.Document]) -> int:
        """Insert entries in order, stopping at the first one a unique index refuses (its slot
        is taken, or its event was logged before); returns how many went in."""
        if not documents:
            return 0
        try:
            await store.available(self._log.insert_many(list(documents), ordered=True))
        except BulkWriteError as error:
            errors = error.details.get("writeErrors") or []
            if errors and all(e.get("code") == DUPLICATE_KEY for e in errors):
                return int(error.details.get("nInserted", 0))
            raise write_failure(errors[0] if errors else {}) from error
        return len(documents)

    async def slots_of(self, event_ids: Iterable[str]) -> dict[str, int]:
        """The slots of the given events that ``audit_events`` knows, in one ``$in`` query."""
        keys = sorted(set(event_ids))
        if not keys:
            return {}
        found = await store.available(self._slots.find({"_id": {"$in": keys}}).to_list())
        return {str(document["_id"]): int(document["index"]) for document in found}

    async def slots_by_scan(self, event_ids: Iterable[str]) -> dict[str, int]:
        """The slots of events the log holds but ``audit_events`` does not (a delivery that
        stopped between the two writes): a read of the log by event id, which scans the log on
        FerretDB. Only the appender's recovery path calls it, once per batch that needs it."""
        keys = sorted(set(event_ids))
        if not keys:
            return {}
        query = {"event_id": {"$in": keys}}
        found = await store.available(self._log.find(query, {"event_id": 1}).to_list())
        slots: dict[str, int] = {}
        for document in found:
            slot = entries.slot_of(document.get("_id"))
            if slot is not None:
                slots[str(document["event_id"])] = slot
        return slots

    async def remember_slots(self, slots: Mapping[str, int]) -> None:
        """Record where each event's entry is (insert-only; recording twice is a no-op)."""
        await insert_ignoring_duplicates(
            self._slots,
            [{"_id": event_id, "index": index} for event_id, index in slots.items()],
        )

    async def index_entries(self, indexed: Sequence[IndexedEntry]) -> None:
        """Add entries to their appeals' index, in order (see appeal_index.py)."""
        await self.appeal_index.add(indexed)

    # Reading entries ------------------------------------------------------------------------

    async def entry(self, index: int) -> store.Document | None:
        return await store.available(self._log.find_one({"_id": entries.entry_key(index)}))

    async def entries(self, indexes: Iterable[int]) -> dict[int, store.Document]:
        """The entries at ``indexes`` by slot (absent ones left out), one query per READ_BATCH."""
        return await self._by_slot(indexes)

    async def range(self, start: int, end: int) -> dict[int, store.Document]:
        """The entries in [start, end) by slot: ``$in`` queries by ``_id`` (a range filter on
        ``_id`` would scan the collection on FerretDB)."""
        return await self._by_slot(range(start, end))

    async def _by_slot(
        self, indexes: Iterable[int], projection: Mapping[str, Any] | None = None
    ) -> dict[int, store.Document]:
        keys = sorted({entries.entry_key(index) for index in indexes})
        found: dict[int, store.Document] = {}
        for start in range(0, len(keys), READ_BATCH):
            query = {"_id": {"$in": keys[start : start + READ_BATCH]}}
            for document in await store.available(self._log.find(query, projection).to_list()):
                slot = entries.slot_of(document.get("_id"))
                if slot is not None:
                    found[slot] = document
        return found

    async def leaf_hashes(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """The stored leaf hashes of the entries at ``indexes`` (what proofs are built from)."""
        found = await self._by_slot(indexes, {entries.LEAF_HASH: 1})
        return {slot: bytes.fromhex(doc[entries.LEAF_HASH]) for slot, doc in found.items()}

    async def find_event(self, event_id: str) -> store.Document | None:
        """The entry of ``event_id``, found by ``_id`` twice (its slot, then the entry)."""
        index = (await self.slots_of([event_id])).get(event_id)
        if index is None:
            return None
        document = await self.entry(index)
        if document is None or document.get("event_id") != event_id:
            return None  # the lookup is derived data: only the log's own entry counts
        return document

    async def scan(self) -> AsyncIterator[store.Document]:
        """Every entry, in whatever order the store returns them (unsorted: a sorted scan makes
        FerretDB hold the whole collection in memory). A whole-log operation."""
        async for document in self._stream(self._log, {}):
            yield document

    async def _stream(
        self,
        collection: store.Collection,
        query: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
        sort: list[tuple[str, int]] | None = None,
    ) -> AsyncIterator[store.Document]:
        cursor = collection.find(dict(query), projection).batch_size(SCAN_BATCH_SIZE)
        if sort:
            cursor = cursor.sort(sort)
        try:
            async for document in cursor:
                yield document
        except store.UNAVAILABLE_ERRORS as error:
            raise TransientError(f"document store unavailable: {error}") from error
        finally:
            await cursor.close()

    async def of_type(
        self,
        kind: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        appeal_ids: Sequence[str] | None = None,
    ) -> list[store.Document]:
        """Entries of one type, optionally in a time range or for some appeals (exports and
        reports: a scan of the log on FerretDB, an index walk on MongoDB)."""
        query: dict[str, Any] = {"type": kind}
        if period := _period(since, until):
            query["occurred_at"] = period
        if appeal_ids is not None:
            query["appeal_id"] = {"$in": list(appeal_ids)}
        return await store.available(self._log.find(query).to_list())

    async def appeal_events(self) -> AsyncIterator[store.Document]:
        """Appeal id, type and time of every entry (reconciliation's side of the log: a scan)."""
        projection = {"appeal_id": 1, "type": 1, "occurred_at": 1}
        async for document in self._stream(self._log, {}, projection):
            yield document

    # Appeals ----------------------------------------------------------------------------------

    async def appeal(self, appeal_id: str) -> store.Document | None:
        """The appeal's document (its entries and summary); None when the log never saw it."""
        return await self.appeal_index.appeal(appeal_id)

    async def query_appeals(
        self,
        *,
        platform: str | None = None,
        queue: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> AppealPage:
        """Appeals matching every filter (a queue matches if the appeal passed through it; the
        others compare with the appeal's summary now), in log order of their first entry, at most
        ``limit`` whose first entry comes after slot ``after``.

        Walks the log from the cursor in ``$in`` batches, reading each batch's appeals by
        ``_id``: the cost is the slots walked, never the log's size, and at most
        ``QUERY_WALK_LIMIT`` slots per page (a page may then hold fewer than ``limit`` appeals;
        its ``next_cursor`` says where to go on). With ``since``, the walk starts at the first
        entry recorded at ``since`` (less ``CLOCK_SKEW_MARGIN``), found by bisection.
        """
        since, until = _aware(since), _aware(until)
        start = 0 if after is None else after + 1
        end = await self.size()
        if since is not None:
            start = await self._first_recorded_at(since - CLOCK_SKEW_MARGIN, start, end)
        found: list[store.Document] = []
        walked = start
        # An appeal has a handful of entries: begin with a stretch that likely fills the page,
        # and read further in larger steps while the filters are selective.
        step = min(READ_BATCH, max(100, limit * 8))
        while walked < end and walked - start < QUERY_WALK_LIMIT:
            stop = min(end, walked + step, start + QUERY_WALK_LIMIT)
            step = min(READ_BATCH, step * 2)
            firsts = await self._appeals_starting_in(walked, stop)
            for slot, document in firsts:
                if _matches(document, platform, queue, outcome, since, until):
                    found.append(document)
                    if len(found) == limit:
                        return AppealPage(found, slot)
            walked = stop
        return AppealPage(found, walked - 1 if walked < end else None)

    async def _appeals_starting_in(self, start: int, stop: int) -> list[tuple[int, store.Document]]:
        """The appeals whose first entry lies in [start, stop), by that slot."""
        slots = await self._by_slot(range(start, stop), {"appeal_id": 1})
        owners = {slot: str(document.get("appeal_id") or "") for slot, document in slots.items()}
        appeal_ids = sorted({appeal_id for appeal_id in owners.values() if appeal_id})
        if not appeal_ids:
            return []
        by_id = await self.appeal_index.appeals(appeal_ids)
        firsts = []
        for slot in sorted(owners):
            document = by_id.get(owners[slot])
            if document is not None and document.get("first_index") == slot:
                firsts.append((slot, document))
        return firsts

    async def _first_recorded_at(self, moment: datetime, low: int, high: int) -> int:
        """The first slot in [low, high) recorded at or after ``moment`` (``high`` if none):
        bisection, since slots are taken in the order entries are recorded."""
        while low < high:
            middle = (low + high) // 2
            found = await self._by_slot([middle], {"recorded_at": 1})
            recorded = _aware(found[middle].get("recorded_at")) if middle in found else None
            if recorded is not None and recorded >= moment:
                high = middle
            else:
                low = middle + 1
        return low

    # The index of earlier versions --------------------------------------------------------------

    async def migrate_legacy_index(self) -> int:
        """Fold ``audit_appeal_index`` (one document per entry, from earlier versions) into
        the appeal index, record every entry's slot in ``audit_events``, then drop it.

        A one-off at start-up, and the only time these collections are built by scanning; it is
        idempotent (both writes are), so a start interrupted half-way simply does it again.
        Returns how many old index documents were folded.
        """
        if not await store.available(
            self._db.list_collection_names(filter={"name": LEGACY_APPEAL_INDEX})
        ):
            return 0
        legacy = self._db[LEGACY_APPEAL_INDEX]
        self.appeal_index.forget()  # nothing remembered may predate the store it migrates
        folded: list[IndexedEntry] = []
        count = 0
        # In (appeal, slot) order, so each appeal's summary ends as its newest entry left it.
        order = [("appeal_id", ASCENDING), ("index", ASCENDING)]
        async for document in self._stream(legacy, {}, sort=order):
            folded.append(_legacy_entry(document))
            count += 1
            if len(folded) == MIGRATION_BATCH:
                await self.index_entries(folded)
                folded = []
        await self.index_entries(folded)
        slots: dict[str, int] = {}
        async for document in self._stream(self._log, {}, {"event_id": 1}):
            slot = entries.slot_of(document.get("_id"))
            if slot is not None and document.get("event_id"):
                slots[str(document["event_id"])] = slot
            if len(slots) == SCAN_BATCH_SIZE:
                await self.remember_slots(slots)
                slots = {}
        await self.remember_slots(slots)
        await store.available(legacy.drop())
        return count

    async def migrate_appeal_documents(self) -> int:
        """Move ``audit_appeals`` (one document per appeal, updated per entry, from the version
        before) into ``audit_appeal_entries``, then drop it; returns how many appeals moved.

        A one-off at start-up, before the consumer runs; it scans the old collection once and
        is idempotent (the new documents are inserted under the same ``_id``s every time), so a
        start interrupted half-way does it again. An appeal's summary as the old document held
        it goes with its first entry, so the entries fold to the same summary.
        """
        if not await store.available(
            self._db.list_collection_names(filter={"name": LEGACY_APPEALS})
        ):
            return 0
        legacy = self._db[LEGACY_APPEALS]
        self.appeal_index.forget()  # nothing remembered may predate the store it migrates
        moved = 0
        documents: list[store.Document] = []
        async for appeal in self._stream(legacy, {}):
            documents += _moved_entries(appeal)
            moved += 1
            if len(documents) >= MIGRATION_BATCH:
                await self.appeal_index.add_documents(documents)
                documents = []
        await self.appeal_index.add_documents(documents)
        await store.available(legacy.drop())
        return moved


def _moved_entries(appeal: store.Document) -> list[store.Document]:
    """The entry documents of an appeal's document of the version before (see
    :meth:`LogRepository.migrate_appeal_documents`)."""
    appeal_id = str(appeal["_id"])
    old_entries = sorted(appeal.get("entries") or [], key=lambda entry: int(entry["index"]))
    summary = facts_in(appeal)
    return [
        entry_document(
            IndexedEntry(
                appeal_id=appeal_id,
                index=int(entry["index"]),
                event_id=str(entry["event_id"]),
                kind=str(entry.get("type") or ""),
                facts=summary if position == 0 else IndexFacts(),
                trace_id=entry.get("trace_id"),
                queues=tuple(appeal.get("queues") or ()) if position == 0 else (),
            ),
            position,
        )
        for position, entry in enumerate(old_entries)
    ]


def _legacy_entry(document: store.Document) -> IndexedEntry:
    """An old per-entry index document (which carried the summary as of that entry)."""
    return IndexedEntry(
        appeal_id=str(document["appeal_id"]),
        index=int(document["index"]),
        event_id=str(document["event_id"]),
        kind=str(document.get("type") or ""),
        facts=facts_in(document),
        trace_id=document.get("trace_id"),
        queues=tuple(document.get("queues") or ()),
    )


def _matches(
    document: store.Document,
    platform: str | None,
    queue: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
) -> bool:
    if platform is not None and document.get("platform") != platform:
        return False
    if queue is not None and queue not in (document.get("queues") or ()):
        return False
    if outcome is not None and document.get("outcome") != outcome:
        return False
    if since is None and until is None:
        return True
    submitted = _aware(document.get("submitted_at"))
    if submitted is None:
        return False
    return (since is None or submitted >= since) and (until is None or submitted < until)


def _aware(moment: Any) -> datetime | None:
    """A datetime in UTC (a naive one is taken as UTC); None for anything else."""
    if not isinstance(moment, datetime):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _period(since: datetime | None, until: datetime | None) -> dict[str, datetime]:
    """A [since, until) filter on a date field; empty when neither end is given."""
    period: dict[str, datetime] = {}
    if since is not None:
        period["$gte"] = since
    if until is not None:
        period["$lt"] = until
    return period
