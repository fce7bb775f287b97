"""The log's entries and the per-appeal index in the store (``audit_log``, ``audit_appeal_index``).

What the store can do cheaply decides the shape. FerretDB 1.x (SQLite) has no transactions and no
atomic findAndModify, and measured here (README, "Storage") it answers *every* read and every
update or delete, ``_id`` equality included, by scanning the collection; only an insert is cheap
(its unique-index check is a real index). MongoDB answers all of these from indexes. So:

* the hot path (the consumer's append) is **inserts only**. Entry ``n`` lives at
  ``_id = entry_key(n)``; the appender inserts at the slot after the last one it wrote. The unique
  ``_id`` lets exactly one appender win a slot and the unique ``event_id`` makes a redelivered
  event a no-op; only a lost race costs reads (was the slot ours? gallop to the next free one);
* the per-appeal index is insert-only as well: one document per entry, ``_id`` =
  ``"<appeal id>/<event id>"`` (so indexing twice is a no-op), carrying the appeal's summary as of
  that entry (platform, queues, outcome, times). The appeal's newest document is its summary; an
  appender keeps the summaries of appeals it is working on in memory, so it never reads one back;
* reads are batched: one ``$in`` or range query per request instead of many point lookups (one
  scan on FerretDB, one index walk on MongoDB).

The index is derived from the log (rebuildable from it, except each event's ``trace_id``, which
only the Kafka record's ``traceparent`` header carried) and never trusted for integrity: every
entry a trail shows is read from the log and comes with an inclusion proof.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from appeals_runtime import store
from appeals_runtime.errors import TransientError
from services.audit import entries
from services.audit.records import AppealSummary, IndexFacts

AUDIT_LOG = "audit_log"
APPEAL_INDEX = "audit_appeal_index"

INDEXES = [
    store.IndexSpec(AUDIT_LOG, [("event_id", ASCENDING)], unique=True),
    # Exports and reports read one type of entry in a period; trails look up an appeal's entries.
    store.IndexSpec(AUDIT_LOG, [("type", ASCENDING), ("occurred_at", ASCENDING)]),
    store.IndexSpec(AUDIT_LOG, [("appeal_id", ASCENDING), ("type", ASCENDING)]),
    store.IndexSpec(APPEAL_INDEX, [("appeal_id", ASCENDING), ("index", ASCENDING)]),
    store.IndexSpec(APPEAL_INDEX, [("first_index", ASCENDING), ("index", ASCENDING)]),
]

# Lost races in a row before the append is handed back to the consumer's backoff: contention
# this long means a store in trouble, not a race.
MAX_APPEND_ATTEMPTS = 50
SCAN_BATCH_SIZE = 1000
# Appeals whose summary an appender remembers (an appeal's events arrive close together).
SUMMARY_CACHE_SIZE = 50_000

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Appended:
    # The entry's index; None when the event was logged before and the slot is not known here.
    index: int | None
    new: bool


def _now() -> datetime:
    return datetime.now(UTC)


def index_key(appeal_id: str, event_id: str) -> str:
    return f"{appeal_id}/{event_id}"


class LogRepository:
    def __init__(self, db: store.Database, *, clock: Clock | None = None) -> None:
        self._log = db[AUDIT_LOG]
        self._index = db[APPEAL_INDEX]
        self._clock = clock or _now
        # The next slot this instance expects to be free; found by galloping on first use.
        self._next: int | None = None
        # Slots below a signed checkpoint are never appended to, whatever the store says.
        self._floor = 0
        self._summaries: OrderedDict[str, AppealSummary] = OrderedDict()

    def raise_floor(self, size: int) -> None:
        self._floor = max(self._floor, size)

    # Appending ----------------------------------------------------------------------------

    async def append(self, event: entries.LoggedEvent) -> Appended:
        """Hash ``event`` into the next free slot once; ``new`` is False when already logged."""
        index = max(await self._expected_next(), self._floor)
        for _ in range(MAX_APPEND_ATTEMPTS):
            entry = entries.new_entry(event, index=index, recorded_at=self._clock())
            try:
                await store.available(self._log.insert_one(entry))
            except DuplicateKeyError:
                occupant = await self._occupant(index)
                if occupant is None:
                    # The slot is free, so the unique event id refused it: logged before.
                    return Appended(None, new=False)
                if occupant == event.event_id:
                    return Appended(index, new=False)  # a concurrent delivery won the slot
                index = await self._first_free(index + 1)
                continue
            self._next = index + 1
            return Appended(index, new=True)
        raise TransientError(
            f"could not append event {event.event_id} to the audit log: "
            f"{MAX_APPEND_ATTEMPTS} appends in a row lost the race for the tail"
        )

    async def _expected_next(self) -> int:
        if self._next is None:
            self._next = await self._first_free(self._floor)
        return self._next

    async def _occupant(self, index: int) -> str | None:
        found = await store.available(
            self._log.find_one({"_id": entries.entry_key(index)}, {"event_id": 1})
        )
        return None if found is None else str(found.get("event_id"))

    async def exists(self, index: int) -> bool:
        found = await store.available(
            self._log.find_one({"_id": entries.entry_key(index)}, {"_id": 1})
        )
        return found is not None

    async def _first_free(self, start: int) -> int:
        """The first empty slot at or after ``start``: gallop forward, then bisect.

        Assumes the slots before ``start`` are taken and the log is contiguous (appends never
        skip a slot; a gap is tampering, which verification reports).
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
        """How many entries the log holds (its first free slot)."""
        self._next = await self._first_free(max(self._next or 0, self._floor))
        return self._next

    # Reading entries ------------------------------------------------------------------------

    async def entry(self, index: int) -> store.Document | None:
        return await store.available(self._log.find_one({"_id": entries.entry_key(index)}))

    async def entries(self, indexes: Iterable[int]) -> dict[int, store.Document]:
        """The entries at ``indexes`` (absent ones left out), in one query."""
        keys = sorted({entries.entry_key(index) for index in indexes})
        if not keys:
            return {}
        found = await store.available(self._log.find({"_id": {"$in": keys}}).to_list())
        return {int(document["index"]): document for document in found}

    async def range(self, start: int, end: int) -> dict[int, store.Document]:
        """The entries in [start, end) by slot, in one range query."""
        if end <= start:
            return {}
        query = {"_id": {"$gte": entries.entry_key(start), "$lt": entries.entry_key(end)}}
        found: dict[int, store.Document] = {}
        async for document in self._stream(query):
            slot = entries.slot_of(document.get("_id"))
            if slot is not None:
                found[slot] = document
        return found

    async def leaf_hashes(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """The stored leaf hashes of the entries at ``indexes`` (what proofs are built from)."""
        keys = sorted({entries.entry_key(index) for index in indexes})
        if not keys:
            return {}
        projection = {entries.LEAF_HASH: 1}
        found = await store.available(self._log.find({"_id": {"$in": keys}}, projection).to_list())
        return {
            int(document["_id"]): bytes.fromhex(document[entries.LEAF_HASH]) for document in found
        }

    async def find_event(self, event_id: str) -> store.Document | None:
        return await store.available(self._log.find_one({"event_id": event_id}))

    async def scan(self) -> AsyncIterator[store.Document]:
        """Every entry, in whatever order the store returns them (unsorted: a sorted scan makes
        FerretDB hold the whole collection in memory)."""
        async for document in self._stream({}):
            yield document

    async def _stream(
        self, query: dict[str, Any], projection: dict[str, Any] | None = None
    ) -> AsyncIterator[store.Document]:
        cursor = self._log.find(query, projection).batch_size(SCAN_BATCH_SIZE)
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
        """Entries of one type, optionally in a time range or for some appeals."""
        query: dict[str, Any] = {"type": kind}
        if period := _period(since, until):
            query["occurred_at"] = period
        if appeal_ids is not None:
            query["appeal_id"] = {"$in": list(appeal_ids)}
        return await store.available(self._log.find(query).to_list())

    async def appeal_events(self) -> AsyncIterator[store.Document]:
        """Appeal id, type and time of every entry (reconciliation's side of the log)."""
        async for document in self._stream({}, {"appeal_id": 1, "type": 1, "occurred_at": 1}):
            yield document

    # The per-appeal index -------------------------------------------------------------------

    async def index_entry(
        self,
        appeal_id: str,
        *,
        event_id: str,
        index: int,
        kind: str,
        facts: IndexFacts,
        trace_id: str | None = None,
    ) -> None:
        """Record that entry ``index`` belongs to ``appeal_id``, with the appeal's summary as of
        that entry and the trace the event came in. Indexing the same event twice is a no-op."""
        previous = self._summaries.get(appeal_id)
        if previous is None and kind != "submitted":
            # Not seen by this instance yet (a restart, a rebalance): read the newest summary.
            indexed = await self.indexed(appeal_id)
            previous = _summary_of(indexed[-1]) if indexed else None
        summary = (
            AppealSummary.starting(facts, index)
            if previous is None
            else previous.then(facts, index)
        )
        document = {
            "_id": index_key(appeal_id, event_id),
            "appeal_id": appeal_id,
            "event_id": event_id,
            "index": index,
            "type": kind,
            "first_index": summary.first_index,
            "platform": summary.platform,
            "queues": list(summary.queues),
            "outcome": summary.outcome,
            "submitted_at": summary.submitted_at,
            "decided_at": summary.decided_at,
            # Operational metadata, deliberately outside the hashed entry: see the README.
            "trace_id": trace_id,
        }
        await store.insert_once(self._index, document)
        self._remember(appeal_id, summary)

    def _remember(self, appeal_id: str, summary: AppealSummary) -> None:
        self._summaries[appeal_id] = summary
        self._summaries.move_to_end(appeal_id)
        while len(self._summaries) > SUMMARY_CACHE_SIZE:
            self._summaries.popitem(last=False)

    async def is_indexed(self, appeal_id: str, event_id: str) -> bool:
        found = await store.available(
            self._index.find_one({"_id": index_key(appeal_id, event_id)}, {"_id": 1})
        )
        return found is not None

    async def indexed(self, appeal_id: str) -> list[store.Document]:
        """The appeal's index documents in log order (empty when the log never saw it)."""
        found = await store.available(self._index.find({"appeal_id": appeal_id}).to_list())
        return sorted(found, key=lambda document: int(document["index"]))

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
    ) -> list[store.Document]:
        """Appeals matching every filter (at some point of their history: a queue an appeal
        passed through matches), in log order of their first entry, ``limit`` after the cursor
        ``after`` (a first index). Each comes with its newest matching summary."""
        query: dict[str, Any] = {}
        for name, value in (("platform", platform), ("queues", queue), ("outcome", outcome)):
            if value is not None:
                query[name] = value
        if period := _period(since, until):
            query["submitted_at"] = period
        if after is not None:
            query["first_index"] = {"$gt": after}
        cursor = self._index.find(query).sort([("first_index", ASCENDING), ("index", ASCENDING)])
        appeals: OrderedDict[str, store.Document] = OrderedDict()
        try:
            async for document in cursor:
                appeal_id = document["appeal_id"]
                if appeal_id not in appeals and len(appeals) == limit:
                    break
                appeals[appeal_id] = document  # later documents know more: keep the newest
        finally:
            await cursor.close()
        return list(appeals.values())


def _summary_of(document: store.Document) -> AppealSummary:
    return AppealSummary(
        first_index=int(document["first_index"]),
        platform=document.get("platform"),
        queues=tuple(document.get("queues") or ()),
        outcome=document.get("outcome"),
        submitted_at=document.get("submitted_at"),
        decided_at=document.get("decided_at"),
    )


async def insert_ignoring_duplicates(
    collection: store.Collection, documents: Sequence[store.Document]
) -> int:
    """Insert what is not there yet (unordered); returns how many were new."""
    if not documents:
        return 0
    try:
        result = await store.available(collection.insert_many(list(documents), ordered=False))
    except BulkWriteError as error:
        others = [e for e in error.details.get("writeErrors", []) if e.get("code") != 11000]
        if others:
            raise
        return int(error.details.get("nInserted", 0))
    return len(result.inserted_ids)


def _period(since: datetime | None, until: datetime | None) -> dict[str, datetime]:
    """A [since, until) filter on a date field; empty when neither end is given."""
    period: dict[str, datetime] = {}
    if since is not None:
        period["$gte"] = since
    if until is not None:
        period["$lt"] = until
    return period
