"""Reading the audit log from outside the audit service: the one place that knows its layout.

The bench observes the log (which appeal's events are logged, when) and seeds it. Entry ``n`` is
the document ``_id = entry_key(n)`` of the log collection, so reading by slot is an ``_id``
lookup on every MongoDB-wire store: a batch of consecutive slots is one ``{_id: {$in: [...]}}``
query, and the first free slot is found by galloping and bisecting on single lookups. Nothing
here scans the log, so observing it costs the same at 10k entries as at 3M.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appeals_runtime import store
from services.audit.log import entries, repository

LOG_COLLECTION = repository.AUDIT_LOG
# The audit service's collections (log, lookups, tree, checkpoints, keys) all carry this prefix.
# History seeding writes them through audit's own code, never by cloning documents.
AUDIT_PREFIX = "audit_"
READ_BATCH = 500
_PROJECTION = {"appeal_id": 1, "type": 1, "event_id": 1, "recorded_at": 1}


def is_audit_collection(name: str) -> bool:
    return name == LOG_COLLECTION or name.startswith(AUDIT_PREFIX)


@dataclass(frozen=True)
class Entry:
    slot: int
    appeal_id: str
    type: str
    event_id: str
    # When the audit service appended the entry (its own clock, milliseconds).
    recorded_at: datetime | None


def _entry(slot: int, document: store.Document) -> Entry:
    recorded = document.get("recorded_at")
    if isinstance(recorded, datetime) and recorded.tzinfo is None:
        recorded = recorded.replace(tzinfo=UTC)
    return Entry(
        slot=slot,
        appeal_id=str(document.get("appeal_id") or ""),
        type=str(document.get("type") or ""),
        event_id=str(document.get("event_id") or ""),
        recorded_at=recorded if isinstance(recorded, datetime) else None,
    )


async def read_slots(
    log: store.Collection, start: int, count: int, *, full: bool = False
) -> dict[int, store.Document]:
    """The entries in slots [start, start + count) that exist, by slot, in one query."""
    keys = [entries.entry_key(slot) for slot in range(start, start + count)]
    projection = None if full else _PROJECTION
    found = await log.find({"_id": {"$in": keys}}, projection).to_list()
    documents = {}
    for document in found:
        slot = entries.slot_of(document.get("_id"))
        if slot is not None:
            documents[slot] = document
    return documents


async def read_entries(
    log: store.Collection, start: int, count: int = READ_BATCH
) -> tuple[list[Entry], int]:
    """The contiguous entries from ``start`` on (up to ``count``) and the next slot to read."""
    documents = await read_slots(log, start, count)
    found = []
    slot = start
    while slot in documents:
        found.append(_entry(slot, documents[slot]))
        slot += 1
    return found, slot


async def _exists(log: store.Collection, slot: int) -> bool:
    return await log.find_one({"_id": entries.entry_key(slot)}, {"_id": 1}) is not None


async def first_free_slot(log: store.Collection, start: int = 0) -> int:
    """The log's size as seen from ``start``: gallop forward, then bisect (slots are contiguous)."""
    if not await _exists(log, start):
        return start
    taken, step = start, 1
    while await _exists(log, taken + step):
        taken += step
        step *= 2
    free = taken + step
    while free - taken > 1:
        middle = (taken + free) // 2
        if await _exists(log, middle):
            taken = middle
        else:
            free = middle
    return free


def payload_bytes(document: Mapping[str, Any]) -> bytes:
    return entries.payload_of(document)


def encode_payload(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def entry_topic(document: Mapping[str, Any]) -> str:
    return str(document.get("topic") or "")


def entry_producer(document: Mapping[str, Any]) -> str:
    return str(document.get("producer") or "")


def is_about_appeal(document: Mapping[str, Any]) -> bool:
    return bool(document.get("appeal_id")) and bool(document.get("topic"))
