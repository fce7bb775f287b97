"""Which appeals intake acknowledged, listed by when they were received, without a scan.

One document per ten seconds of reception (``_id`` = the slot's start in UTC,
``2026-12-05T23:56:40``) holds the ids and received times of the appeals acknowledged in it. A
time window is listed by looking its slots up by ``_id`` (many per query), so the cost follows the
window, never the history the store holds, and ops can page through any window as long as intake
keeps its records: this is what reconciliation compares the audit log with
(``GET /v1/appeals?received_after=...``), not bounded by the broker's retention.

The status projection adds each appeal when its submitted event comes by, and commits the
event's offset only after that: no acknowledged appeal is missing from the index. It is off the
submit's path on purpose: an ``$addToSet`` rewrites its whole document, so adds wait a moment
(``LINGER_S``) and go together, one update per slot, and slots stay small (ten seconds: 500
entries at 50 appeals/s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from appeals_runtime import store

RECEIVED_INDEX = "received_by_slot"
SLOT = timedelta(seconds=10)
# Slots looked up per query while listing.
SLOTS_PER_QUERY = 360
# How long an add waits for others to go with it (it is off every request's path).
LINGER_S = 0.2


def slot_of(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.replace(second=moment.second // 10 * 10).strftime("%Y-%m-%dT%H:%M:%S")


def slots_between(since: datetime, until: datetime) -> Iterator[str]:
    """The slots that hold appeals received in ``[since, until)``."""
    start = since.astimezone(UTC)
    slot = start.replace(second=start.second // 10 * 10, microsecond=0)
    while slot < until:
        yield slot_of(slot)
        slot += SLOT


@dataclass(frozen=True)
class Received:
    appeal_id: str
    received_at: datetime


@dataclass(frozen=True)
class Page:
    appeals: list[Received]
    # Where the next page starts; None when the window is done.
    next_cursor: str | None


class ReceivedIndex:
    def __init__(self, db: store.Database, *, linger_s: float = LINGER_S) -> None:
        self._slots = db[RECEIVED_INDEX]
        self._linger_s = linger_s
        self._waiting: list[tuple[str, datetime, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, appeal_id: str, received_at: datetime) -> None:
        """Index the appeal (idempotent); returns once it is stored."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((appeal_id, store.stored_time(received_at), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        await asyncio.sleep(self._linger_s)
        while self._waiting:
            batch, self._waiting = self._waiting, []
            by_slot: dict[str, list[dict[str, Any]]] = {}
            for appeal_id, at, _ in batch:
                by_slot.setdefault(slot_of(at), []).append({"id": appeal_id, "at": at})
            error: BaseException | None = None
            try:
                for slot, entries in by_slot.items():
                    await store.available(
                        self._slots.update_one(
                            {"_id": slot},
                            {"$addToSet": {"entries": {"$each": entries}}},
                            upsert=True,
                        )
                    )
            except Exception as failure:  # unreachable or busy: every waiter hears it
                error = failure
            for _, _, done in batch:
                if done.done():
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

    async def page(
        self, since: datetime, until: datetime, *, cursor: str | None, limit: int
    ) -> Page:
        """Appeals received in ``[since, until)``, by slot then id, at most ``limit``;
        ``cursor`` (from the previous page) says where to go on."""
        start_slot, start_after = _parse_cursor(cursor)
        slots = [slot for slot in slots_between(since, until) if slot >= start_slot]
        found: list[Received] = []
        for first in range(0, len(slots), SLOTS_PER_QUERY):
            chunk = slots[first : first + SLOTS_PER_QUERY]
            documents = await store.available(self._slots.find({"_id": {"$in": chunk}}).to_list())
            by_slot = {str(d["_id"]): d for d in documents}
            for slot in chunk:
                document = by_slot.get(slot)
                if document is None:
                    continue
                entries = sorted((str(e["id"]), e["at"]) for e in document.get("entries", []))
                for appeal_id, at in entries:
                    if slot == start_slot and start_after and appeal_id <= start_after:
                        continue
                    if not since <= at < until:
                        continue
                    if len(found) == limit:
                        last = found[-1]
                        return Page(found, f"{slot_of(last.received_at)}|{last.appeal_id}")
                    found.append(Received(appeal_id, at))
        return Page(found, None)


def _parse_cursor(cursor: str | None) -> tuple[str, str]:
    if not cursor:
        return "", ""
    minute, _, after = cursor.partition("|")
    return minute, after
