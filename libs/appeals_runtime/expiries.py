"""When stored things expire, kept so that sweeping costs what expires, not what is stored.

FerretDB has no TTL indexes, and a query on ``expires_at`` scans every document ever stored. So
each thing that will expire (intake's idempotency keys, live help's verifications) is also noted
in an expiry *bucket*: one document per minute, ``_id`` the minute, listing the ids that expire
in it. The sweeper reads the buckets of the minutes that passed since it last ran, by ``_id``,
and has their ids deleted.

Notes are collected in memory and written about once a second, one write per bucket, instead of
one more write per item. A crash loses the last second's notes: those items stay in the store
(every read checks their own expiry, so they are never used), until something deletes them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta

from appeals_runtime import store

MINUTE = timedelta(minutes=1)
# A bucket is always written at least this far ahead of the minute it is written in, so the
# sweeper, which only reads minutes that have passed, never reads a bucket before its last
# write landed (with room for a slow write and clocks of several instances that disagree).
WRITE_AHEAD = 2 * MINUTE
# At most this many minutes are swept in one run (a day); a store that was down longer is
# caught up over the following runs.
MAX_MINUTES_PER_SWEEP = 24 * 60


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def bucket_id(minute: datetime) -> str:
    return minute.strftime("%Y-%m-%dT%H:%MZ")


def bucket_for(expires_at: datetime, now: datetime) -> datetime:
    """The minute whose bucket lists a key expiring at ``expires_at``, written at ``now``."""
    return max(minute_of(expires_at), minute_of(now) + WRITE_AHEAD)


def due_minutes(swept_through: datetime, now: datetime) -> list[datetime]:
    """The minutes from ``swept_through`` on that have passed by ``now`` (bounded per run)."""
    minutes: list[datetime] = []
    minute = swept_through
    while minute < minute_of(now) and len(minutes) < MAX_MINUTES_PER_SWEEP:
        minutes.append(minute)
        minute += MINUTE
    return minutes


def chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class ExpiryNotes:
    """Ids noted since the last write of the buckets, by the minute they expire in."""

    def __init__(self) -> None:
        self._expiring: dict[datetime, list[str]] = defaultdict(list)

    def note(self, scope: str, expires_at: datetime) -> None:
        self._expiring[minute_of(expires_at)].append(scope)

    def take(self) -> dict[datetime, list[str]]:
        """Everything noted so far; the caller writes it or gives it back."""
        taken, self._expiring = self._expiring, defaultdict(list)
        return taken

    def give_back(self, taken: dict[datetime, list[str]]) -> None:
        for minute, scopes in taken.items():
            self._expiring[minute][:0] = scopes

    def __len__(self) -> int:
        return sum(len(scopes) for scopes in self._expiring.values())


# The bucket document that says up to which minute the buckets were swept.
SWEPT_THROUGH = "swept-through"
# Ids per statement (FerretDB hangs on update commands of 100+ statements; these are one each).
SWEEP_BATCH = 500


class ExpiryIndex:
    """The expiry buckets of one kind of thing, in ``collection``: note, flush, sweep.

    ``field`` names the list of ids in a bucket (intake's buckets, older than this class, call
    it ``scopes``). Flushes are serialised in this process; two instances flushing the same
    bucket both append (``$push``), and two sweeping at once delete the same ids, harmlessly.
    """

    def __init__(self, collection: store.Collection, *, field: str = "ids") -> None:
        self._buckets = collection
        self._field = field
        self._notes = ExpiryNotes()
        self._flushing = asyncio.Lock()
        self._swept_through_exists = False

    def note(self, item_id: str, expires_at: datetime) -> None:
        self._notes.note(item_id, expires_at)

    async def flush(self, now: datetime) -> int:
        """Write down when the items noted since the last flush expire: one write per bucket
        (minute), not per item. Returns how many were written down; what could not be written
        is kept for the next flush."""
        async with self._flushing:
            taken = self._notes.take()
            buckets: dict[datetime, list[datetime]] = {}
            for minute in taken:
                buckets.setdefault(bucket_for(minute, now), []).append(minute)
            written = 0
            try:
                if taken and not self._swept_through_exists:
                    # The sweeper starts at this minute; every bucket is written after it.
                    await store.available(
                        self._buckets.update_one(
                            {"_id": SWEPT_THROUGH},
                            {"$setOnInsert": {"minute": minute_of(now)}},
                            upsert=True,
                        )
                    )
                    self._swept_through_exists = True
                for bucket, minutes in sorted(buckets.items()):
                    ids = [item for minute in minutes for item in taken[minute]]
                    await store.available(
                        self._buckets.update_one(
                            {"_id": bucket_id(bucket)},
                            {"$push": {self._field: {"$each": ids}}},
                            upsert=True,
                        )
                    )
                    for minute in minutes:
                        del taken[minute]
                    written += len(ids)
            finally:
                self._notes.give_back(taken)
            return written

    async def sweep(self, now: datetime, delete: Callable[[list[str]], Awaitable[int]]) -> int:
        """Have ``delete`` remove the ids listed in the buckets of the minutes that passed since
        the last sweep (at most ``SWEEP_BATCH`` at a time); the number it reports deleted. Work
        in proportion to what expired, however much the store holds."""
        await self.flush(now)
        swept_through = await store.available(self._buckets.find_one({"_id": SWEPT_THROUGH}))
        if swept_through is None:
            return 0  # nothing was ever written down: nothing can be due
        due = due_minutes(swept_through["minute"], now)
        if not due:
            return 0
        deleted = 0
        for some_ids in chunks([bucket_id(minute) for minute in due], SWEEP_BATCH):
            found = await store.available(self._buckets.find({"_id": {"$in": some_ids}}).to_list())
            for bucket in found:
                for ids in chunks(list(bucket.get(self._field, [])), SWEEP_BATCH):
                    deleted += await delete(ids)
            if found:
                swept = [bucket["_id"] for bucket in found]
                await store.available(self._buckets.delete_many({"_id": {"$in": swept}}))
        # $max: two instances sweeping at once never move it back.
        await store.available(
            self._buckets.update_one({"_id": SWEPT_THROUGH}, {"$max": {"minute": due[-1] + MINUTE}})
        )
        return deleted
