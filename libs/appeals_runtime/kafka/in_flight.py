"""Bookkeeping for records handled concurrently: per-key order and the offset safe to commit.

Pure (no I/O): the consumer runner starts one task per record and tells these classes when a
record starts and ends. Two rules make concurrency safe:

* records with the same key (one appeal's events) are handled one after another, in offset
  order: a record's task waits for the previous record of its key (:class:`KeyChains`);
* a partition's committed offset only moves past records that are all handled: the commit
  position is the lowest offset still in flight, or the next offset when none is
  (:class:`PartitionProgress`). A crash redelivers whatever was in flight, and the handlers,
  idempotent, apply each record once.

Delayed records (a retry topic, whose due times are not in offset order) are handled one at a
time per key in the order they fall due instead (:class:`KeyLocks`); dead letters are paced
(:class:`DeadLetterPace`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable


class PartitionProgress:
    """The offsets of one partition in flight, in the order they were fetched."""

    def __init__(self) -> None:
        self._in_flight: deque[int] = deque()
        self._finished: set[int] = set()
        # Next offset after everything fetched so far; None before the first record.
        self._next_fetched: int | None = None

    def __len__(self) -> int:
        return len(self._in_flight)

    def started(self, offset: int) -> None:
        if self._next_fetched is not None and offset < self._next_fetched:
            raise ValueError(f"offset {offset} fetched twice (next expected {self._next_fetched})")
        self._in_flight.append(offset)
        self._next_fetched = offset + 1

    def finished(self, offset: int) -> int | None:
        """Mark ``offset`` handled; the new commit position if it moved, else None."""
        self._finished.add(offset)
        moved = None
        while self._in_flight and self._in_flight[0] in self._finished:
            done = self._in_flight.popleft()
            self._finished.discard(done)
            moved = done + 1
        return moved

    @property
    def position(self) -> int | None:
        """The first offset not yet handled (what lag is measured from); None before any fetch."""
        if self._in_flight:
            return self._in_flight[0]
        return self._next_fetched


class KeyChains:
    """The last task started for each key, so the next record of that key can wait for it."""

    def __init__(self) -> None:
        self._tails: dict[Hashable, asyncio.Future[bool]] = {}

    def previous(self, key: Hashable) -> asyncio.Future[bool] | None:
        """The unfinished task of ``key`` started last, if any."""
        tail = self._tails.get(key)
        return tail if tail is not None and not tail.done() else None

    def started(self, key: Hashable, task: asyncio.Future[bool]) -> None:
        self._tails[key] = task

        def forget(done: asyncio.Future[bool]) -> None:
            if self._tails.get(key) is done:
                del self._tails[key]

        task.add_done_callback(forget)

    def __len__(self) -> int:
        return len(self._tails)


class KeyLocks:
    """One lock per key, held while a record of that key is handled: records of one key never
    run at once, in whatever order they come (for delayed records, which run when due, not in
    offset order). A key's lock is forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def holding(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class DeadLetterPace:
    """At most ``per_minute`` dead letters a minute, in bursts of up to ``burst`` (a token
    bucket). A deploy that fails every record would otherwise move a whole topic into its DLQ in
    seconds; paced, the records stay on their topic, the consumer lag grows and alerts fire,
    while a poison record now and then goes at once."""

    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate_s = per_minute / 60
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def wait_s(self) -> float:
        """Take a dead letter's token: 0 when it may go now, else how long until it may
        (nothing taken then: ask again after that long)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate_s)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._rate_s
