"""Which appeals intake acknowledged, listed by when they were received, without a scan.

One document per minute of reception (``_id`` = the minute in UTC, ``2026-12-05T23:56``) holds
the ids and received times of the appeals acknowledged in it. A time window is listed by looking
its minutes up by ``_id`` (many per query), so the cost follows the window, never the history the
store holds, and ops can page through any window as long as intake keeps its records: this is
what reconciliation compares the audit log with (``GET /v1/appeals?received_after=...``), not
bounded by the broker's retention.

The status projection adds each appeal when its submitted event comes by, and commits the
event's offset only after that: no acknowledged appeal is missing from the index. Adds that
arrive while one write is on its way go together, one ``$addToSet`` per minute.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from appeals_runtime import store
from appeals_runtime.errors import TransientError

RECEIVED_INDEX = "received_by_minute"
MINUTE = timedelta(minutes=1)
# Minutes looked up per query while listing.
MINUTES_PER_QUERY = 120


def minute_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def minutes_between(since: datetime, until: datetime) -> Iterator[str]:
    """The minutes that hold appeals received in ``[since, until)``."""
    minute = since.astimezone(UTC).replace(second=0, microsecond=0)
    while minute < until:
        yield minute_of(minute)
        minute += MINUTE


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
    def __init__(self, db: store.Database) -> None:
        self._minutes = db[RECEIVED_INDEX]
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
        while self._waiting:
            batch, self._waiting = self._waiting, []
            by_minute: dict[str, list[dict[str, Any]]] = {}
            for appeal_id, at, _ in batch:
                by_minute.setdefault(minute_of(at), []).append({"id": appeal_id, "at": at})
            error: BaseException | None = None
            try:
                for minute, entries in by_minute.items():
                    await store.available(
                        self._minutes.update_one(
                            {"_id": minute},
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
        """Appeals received in ``[since, until)``, by minute then id, at most ``limit``;
        ``cursor`` (from the previous page) says where to go on."""
        start_minute, start_after = _parse_cursor(cursor)
        minutes = [m for m in minutes_between(since, until) if m >= start_minute]
        found: list[Received] = []
        for first in range(0, len(minutes), MINUTES_PER_QUERY):
            chunk = minutes[first : first + MINUTES_PER_QUERY]
            documents = await _found(self._minutes, {"_id": {"$in": chunk}})
            by_minute = {str(d["_id"]): d for d in documents}
            for minute in chunk:
                document = by_minute.get(minute)
                if document is None:
                    continue
                entries = sorted((str(e["id"]), e["at"]) for e in document.get("entries", []))
                for appeal_id, at in entries:
                    if minute == start_minute and start_after and appeal_id <= start_after:
                        continue
                    if not since <= at < until:
                        continue
                    if len(found) == limit:
                        last = found[-1]
                        return Page(found, f"{minute_of(last.received_at)}|{last.appeal_id}")
                    found.append(Received(appeal_id, at))
        return Page(found, None)


def _parse_cursor(cursor: str | None) -> tuple[str, str]:
    if not cursor:
        return "", ""
    minute, _, after = cursor.partition("|")
    return minute, after


async def _found(collection: store.Collection, query: store.Document) -> list[store.Document]:
    try:
        return await collection.find(query).to_list()
    except store.UNAVAILABLE_ERRORS as error:
        raise TransientError(f"document store unavailable: {error}") from error
