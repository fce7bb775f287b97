"""The appeal index (``audit_appeal_entries``): which entries of the log belong to an appeal, and
what they say about it.

One document per entry of an appeal, inserted once and never updated: ``_id`` =
``"<appeal id>/<n>"`` for the appeal's n-th indexed entry (0, 1, ...), holding the entry's slot,
event id, type, the trace it came in and the facts it tells the ops query (platform, queue,
outcome, times). An appeal's entries are read by ``_id`` (``$in`` of its first positions, more
only for a long trail), and its summary is folded from them in log order with
``records.AppealSummary``'s rule, so nothing is ever read back in order to be written.

Why inserts: FerretDB applies the statements of an update command one by one, each a read,
an unmarshal and a rewrite of the whole document behind the collection's update lock, while
the documents of one insert go to SQLite together. The per-appeal document of the version
before (one conditional ``$push`` per entry) made the audit consumer the pipeline's slowest
hop at saturation: with no index at all, end to end rose from 82.9 to 107.7 appeals/s and
submit→audited p50 fell from 6.6 s to 0.9 s at 200/s offered (7 Dec).

Which position comes next is known to the instance that wrote the appeal's last entry: the
audit consumer handles one appeal's events one after another (its partition's owner), so a
bounded memory of recent appeals (their slots, by position) answers it; an appeal it does not
remember (evicted, a restart, a rebalance) is read first, a batch's unknown appeals in one
query, except a new appeal: one whose first entry in the batch is its submitted event has none
before it (a redelivery, or a chat before the appeal, finds its position taken, as below). A
position another writer took meanwhile (another instance, a redelivery racing the first
delivery) is refused by the unique ``_id``: the appeal is read again and the entry goes after
it, or is found there already. An entry whose slot the appeal already lists is never indexed
twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appeals_runtime import store
from appeals_runtime.errors import TransientError
from services.audit.log.records import AppealSummary, IndexFacts
from services.audit.log.writes import insert_new

APPEAL_ENTRIES = "audit_appeal_entries"
# Positions read at once per appeal (a trail is a handful of entries; longer ones read on).
PROBE = 12
# Appeals whose positions an instance remembers (about 150 bytes each): minutes of traffic at
# the rates the bench drives, so an appeal's next event usually finds it.
REMEMBERED_APPEALS = 20_000
# Entry documents per insert command (FerretDB 1.24 stalls on very large write commands).
INSERT_BATCH = 50
# The entry type that starts an appeal (its first entry, but for a live-help chat before it).
SUBMITTED = "submitted"
# Rounds of "position taken, read again" before the batch is handed back to the callers'
# backoff: contention this long means a store in trouble, not a race.
MAX_ROUNDS = 10


@dataclass(frozen=True)
class IndexedEntry:
    """One entry of an appeal, as its index document records it."""

    appeal_id: str
    index: int
    event_id: str
    kind: str
    facts: IndexFacts
    trace_id: str | None = None
    # Queues the appeal passed through as of this entry (the entry's own, or an old summary's).
    queues: tuple[str, ...] = ()


def entry_id(appeal_id: str, position: int) -> str:
    return f"{appeal_id}/{position}"


def entry_document(entry: IndexedEntry, position: int) -> store.Document:
    """The index document of ``entry`` at ``position``; facts only when the entry has them."""
    facts = entry.facts
    document: store.Document = {
        "_id": entry_id(entry.appeal_id, position),
        "appeal_id": entry.appeal_id,
        "index": entry.index,
        "event_id": entry.event_id,
        "type": entry.kind,
        # Operational metadata, deliberately outside the hashed entry: see the README.
        "trace_id": entry.trace_id,
    }
    document.update(_stated(facts))
    queues = list(dict.fromkeys((*entry.queues, *([facts.queue] if facts.queue else []))))
    if queues:
        document["queues"] = queues
    return document


def appeal_document(appeal_id: str, documents: Iterable[store.Document]) -> store.Document | None:
    """The appeal as a whole, from its entry documents: its entries in log order and the
    summary they fold to (the shape ops queries and trails read). None without entries."""
    ordered = sorted(documents, key=lambda document: int(document["index"]))
    if not ordered:
        return None
    summary: AppealSummary | None = None
    for document in ordered:
        facts = facts_in(document)
        index = int(document["index"])
        if summary is None:
            summary = AppealSummary.starting(facts, index)
        else:
            summary = summary.then(facts, index)
        for queue in document.get("queues") or ():
            summary = summary.then(IndexFacts(queue=queue), index)
    assert summary is not None
    appeal: store.Document = {"_id": appeal_id, "appeal_id": appeal_id}
    appeal.update(_stated(summary))
    appeal["first_index"] = summary.first_index
    if summary.queues:
        appeal["queues"] = list(summary.queues)
    appeal["slots"] = [int(document["index"]) for document in ordered]
    appeal["entries"] = [
        {
            "index": int(document["index"]),
            "event_id": document["event_id"],
            "type": document["type"],
            "trace_id": document.get("trace_id"),
        }
        for document in ordered
    ]
    return appeal


class AppealIndex:
    def __init__(self, db: store.Database, *, remembered: int = REMEMBERED_APPEALS) -> None:
        self._entries = db[APPEAL_ENTRIES]
        self._remembered = remembered
        # Appeal id -> the slots of its entries by position (its next position is the length).
        self._positions: OrderedDict[str, list[int]] = OrderedDict()

    async def add(self, indexed: Sequence[IndexedEntry]) -> None:
        """Index each entry under its appeal once, in the order given: one insert command per
        ``INSERT_BATCH`` entries, one read first for the appeals this instance does not know."""
        pending = list(indexed)
        for round_ in range(MAX_ROUNDS):
            unknown = {e.appeal_id for e in pending if e.appeal_id not in self._positions}
            # An appeal whose first entry here is its submitted event is new: nothing to read.
            # Only that entry goes in this round: if something was indexed before it after all
            # (a chat before the appeal, a redelivery), its position is refused and the appeal
            # is read before its other entries are placed, which so never land twice.
            assumed = _starting_with_submission(pending) & unknown if round_ == 0 else set()
            await self._learn(unknown - assumed)
            planned: list[tuple[IndexedEntry, store.Document]] = []
            deferred: list[IndexedEntry] = []
            for entry in pending:
                if entry.appeal_id in assumed and entry.kind != SUBMITTED:
                    deferred.append(entry)
                    continue
                slots = self._remember(entry.appeal_id)
                if entry.index in slots:
                    continue  # indexed before (a redelivery, or the same event twice)
                planned.append((entry, entry_document(entry, len(slots))))
                slots.append(entry.index)
            pending = await self._insert(planned) + deferred
            if not pending:
                return
        raise TransientError(
            f"could not index {len(pending)} audit entries: their appeals' next positions were "
            f"taken {MAX_ROUNDS} times in a row"
        )

    async def _insert(
        self, planned: list[tuple[IndexedEntry, store.Document]]
    ) -> list[IndexedEntry]:
        """Insert the planned documents; the entries whose position another writer took (their
        appeals are forgotten, to be read again)."""
        taken: list[IndexedEntry] = []
        try:
            for start in range(0, len(planned), INSERT_BATCH):
                chunk = planned[start : start + INSERT_BATCH]
                refused = await insert_new(self._entries, [document for _, document in chunk])
                taken += [chunk[n][0] for n in refused]
        except BaseException:
            # Unknown which went in: what this instance assumed about these appeals is dropped.
            for entry, _ in planned:
                self._positions.pop(entry.appeal_id, None)
            raise
        for entry in taken:
            self._positions.pop(entry.appeal_id, None)
        return taken

    def _remember(self, appeal_id: str) -> list[int]:
        slots = self._positions.setdefault(appeal_id, [])
        self._positions.move_to_end(appeal_id)
        while len(self._positions) > self._remembered:
            self._positions.popitem(last=False)
        return slots

    async def _learn(self, appeal_ids: set[str]) -> None:
        """Read the positions of appeals this instance does not remember."""
        for appeal_id, documents in (await self._read(appeal_ids)).items():
            by_position = sorted(documents, key=_position)
            self._positions[appeal_id] = [int(document["index"]) for document in by_position]
            self._remember(appeal_id)

    async def _read(self, appeal_ids: Iterable[str]) -> dict[str, list[store.Document]]:
        """Every entry document of the given appeals (empty lists for unknown ones): ``$in``
        of their first ``PROBE`` positions, and of the next ones for those that fill them."""
        found: dict[str, list[store.Document]] = {appeal_id: [] for appeal_id in appeal_ids}
        reading = sorted(found)
        start = 0
        while reading:
            keys = [
                entry_id(appeal_id, position)
                for appeal_id in reading
                for position in range(start, start + PROBE)
            ]
            for document in await store.available(
                self._entries.find({"_id": {"$in": keys}}).to_list()
            ):
                found[str(document["appeal_id"])].append(document)
            last = start + PROBE - 1
            # Positions are taken one after another, so an appeal with its last probed position
            # taken may have more.
            reading = [a for a in reading if any(_position(d) == last for d in found[a])]
            start += PROBE
        return found

    async def appeal(self, appeal_id: str) -> store.Document | None:
        """The appeal's entries and summary; None when the log never indexed it."""
        return appeal_document(appeal_id, (await self._read([appeal_id]))[appeal_id])

    async def appeals(self, appeal_ids: Iterable[str]) -> dict[str, store.Document]:
        """Several appeals at once (ops queries), by appeal id; unknown ones left out."""
        assembled = {
            appeal_id: appeal_document(appeal_id, documents)
            for appeal_id, documents in (await self._read(appeal_ids)).items()
        }
        return {appeal_id: found for appeal_id, found in assembled.items() if found is not None}

    def forget(self) -> None:
        """Drop what this instance remembers of appeals' positions (they are read again)."""
        self._positions.clear()

    async def add_documents(self, documents: Sequence[store.Document]) -> None:
        """Insert prepared entry documents, those already there left as they are (the one-off
        migration of the per-appeal documents of earlier versions, which calls :meth:`forget`
        first)."""
        for start in range(0, len(documents), INSERT_BATCH):
            await insert_new(self._entries, documents[start : start + INSERT_BATCH])


def _starting_with_submission(entries: Sequence[IndexedEntry]) -> set[str]:
    """The appeals whose first entry in ``entries`` is their submitted event."""
    first: dict[str, str] = {}
    for entry in entries:
        first.setdefault(entry.appeal_id, entry.kind)
    return {appeal_id for appeal_id, kind in first.items() if kind == SUBMITTED}


def facts_in(document: Mapping[str, Any]) -> IndexFacts:
    """The summary facts a stored document holds (an entry's, an appeal's, an old index's)."""
    return IndexFacts(
        platform=document.get("platform"),
        outcome=document.get("outcome"),
        submitted_at=document.get("submitted_at"),
        decided_at=document.get("decided_at"),
    )


def _stated(said: IndexFacts | AppealSummary) -> dict[str, Any]:
    """The facts (an entry's, or a summary's) that say something: absent ones stay unwritten."""
    values = {
        "platform": said.platform,
        "outcome": said.outcome,
        "submitted_at": said.submitted_at,
        "decided_at": said.decided_at,
    }
    return {name: value for name, value in values.items() if value is not None}


def _position(document: Mapping[str, Any]) -> int:
    return int(str(document["_id"]).rsplit("/", 1)[1])
