"""Each appeal's status changes as inserted entries (``appeal_status_entries``), never updates.

One document per applied lifecycle event: ``_id`` = ``"<appeal id>/<n>"`` for the appeal's n-th
status change (0, 1, ...), holding the event id, the status it moved to, when, and the fields it
set (queue, reviewer, outcome, the open request for information). An appeal's status is its
record as submitted with its entries applied in order; look-ups read the entries by ``_id``
(``$in`` of the first positions, more only for a long history).

Why inserts: FerretDB runs an update as a read, an unmarshal and a rewrite of the whole document,
one statement at a time behind the collection's update lock, and the record is the largest
document intake keeps (the submission). The conditional ``$push`` per event that versions before
this one wrote was most of the update work left on the hot path; an insert of a small document
costs the store about a fifth of it (see the README's performance section).

Which position comes next is known to the instance that applied the appeal's last change: the
status projection handles one appeal's events one after another (its partition's owner), and
it learns every new appeal from its ``submitted`` event, which comes first. So a bounded memory
of recent appeals (their applied event ids, by position) answers both "applied before?" and
"which position?" without a read; an appeal it does not remember (evicted, a restart, a
rebalance) is read first. A position another writer took meanwhile (another instance, a
redelivery racing the first delivery) is refused by the unique ``_id``: the appeal is read
again and the change goes after it, or is found there already.

Stores from earlier versions applied changes to the record in place and listed their events in
its ``applied_events``. Those stay as they are (the record is the state before the entries); an
event that occurred before this version first ran on the store (``LegacyWindow``) may be a
redelivery of one applied that way, so for it the record's list is read too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from appeals_runtime import store
from appeals_runtime.errors import TransientError
from services.intake.model import StatusChange

STATUS_ENTRIES = "appeal_status_entries"
# One-off facts about the store (``_id`` = the fact's name).
UPGRADES = "intake_upgrades"
LEGACY_WINDOW = "status-entries"
# Events are stamped by other services' clocks: an event this close after the upgrade may still
# have been applied in place by the version before.
CLOCK_MARGIN = timedelta(minutes=1)
# Positions read at once per appeal (a history is a handful of changes; longer ones read on).
PROBE = 8
# Appeals whose applied events an instance remembers (a few hundred bytes each): minutes of
# traffic at the rates the bench drives, so an appeal's next event usually finds it.
REMEMBERED_APPEALS = 20_000
# Rounds of "position taken, read again" before giving up to the caller's backoff: contention
# this long means a store in trouble, not a race.
MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class StatusEntry:
    """One applied change, as its document records it."""

    event_id: str
    status: str
    at: datetime
    fields: Mapping[str, Any]


def entry_id(appeal_id: str, position: int) -> str:
    return store.position_id(appeal_id, position)


def entry_document(
    appeal_id: str, position: int, event_id: str, change: StatusChange
) -> store.Document:
    return {
        "_id": entry_id(appeal_id, position),
        "event_id": event_id,
        "status": change.status,
        "at": store.stored_time(change.at),
        "fields": dict(change.fields),
    }


def entry(document: store.Document) -> StatusEntry:
    return StatusEntry(
        document["event_id"], document["status"], document["at"], document.get("fields") or {}
    )


def folded(record: store.Document, entries: Sequence[StatusEntry]) -> store.Document:
    """The record with its entries applied in order, as the in-place updates of earlier versions
    would have left it (``$set`` of the status, its time and the event's fields)."""
    state = dict(record)
    for applied in entries:
        state.update(applied.fields)
        state["status"], state["updated_at"] = applied.status, applied.at
    return state


class LegacyWindow:
    """Until when events may have been applied in place by an earlier version: the moment this
    version first ran on a store that held appeals already (never, on a store it started)."""

    def __init__(self, db: store.Database, appeals: store.Collection) -> None:
        self._upgrades = db[UPGRADES]
        self._appeals = appeals
        self.before: datetime | None = None

    async def load(self, now: datetime) -> None:
        """Read the window, writing it first when this is the first start of this version."""
        found = await store.available(self._upgrades.find_one({"_id": LEGACY_WINDOW}))
        if found is None:
            # One document is enough to tell (a read that stops at the first row).
            any_appeal = await store.available(self._appeals.find_one({}, {"_id": 1}))
            before = store.stored_time(now) + CLOCK_MARGIN if any_appeal is not None else None
            window: store.Document = {"_id": LEGACY_WINDOW, "before": before}
            if await store.insert_once(self._upgrades, window):
                found = window
            else:  # another instance starting at the same time wrote it first: its window holds
                found = await store.available(self._upgrades.find_one({"_id": LEGACY_WINDOW}))
        self.before = found.get("before") if found is not None else None

    def may_hold(self, occurred_at: datetime) -> bool:
        """Whether an event that occurred then may have been applied in place."""
        return self.before is not None and occurred_at < self.before


class StatusEntries:
    def __init__(self, db: store.Database, *, remembered: int = REMEMBERED_APPEALS) -> None:
        self._entries = db[STATUS_ENTRIES]
        self._remembered = remembered
        # Appeal id -> the ids of its applied events by position (the next position is the
        # length).
        self._applied: OrderedDict[str, list[str]] = OrderedDict()

    def started(self, appeal_id: str) -> None:
        """The appeal's submitted event came by: unless this instance knows it already, it has
        no changes yet (if another instance applied some, the first insert finds out)."""
        if appeal_id not in self._applied:
            self._remember(appeal_id, [])

    async def apply(self, appeal_id: str, event_id: str, change: StatusChange) -> bool:
        """Apply the event's change once; False when it was applied before."""
        for _ in range(MAX_ATTEMPTS):
            applied = self._applied.get(appeal_id)
            if applied is None:
                applied = [e.event_id for e in await self.read(appeal_id)]
                self._remember(appeal_id, applied)
            else:
                self._applied.move_to_end(appeal_id)
            if event_id in applied:
                return False
            document = entry_document(appeal_id, len(applied), event_id, change)
            try:
                inserted = await store.insert_once(self._entries, document)
            except BaseException:
                self._applied.pop(appeal_id, None)  # unknown whether it went in: read again
                raise
            if inserted:
                applied.append(event_id)
                return True
            self._applied.pop(appeal_id, None)  # taken by another writer: read again
        raise TransientError(
            f"could not apply {event_id} to {appeal_id}: its next position was taken "
            f"{MAX_ATTEMPTS} times in a row"
        )

    async def read(self, appeal_id: str) -> list[StatusEntry]:
        """The appeal's changes in order (none for an unknown appeal)."""
        documents = await store.positioned(self._entries, appeal_id, chunk=PROBE)
        return [entry(document) for document in documents]

    def _remember(self, appeal_id: str, applied: list[str]) -> None:
        self._applied[appeal_id] = applied
        self._applied.move_to_end(appeal_id)
        while len(self._applied) > self._remembered:
            self._applied.popitem(last=False)
