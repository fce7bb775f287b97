"""Bookkeeping for records handled concurrently: per-key order and the offset safe to commit.

Pure (no I/O): the consumer runner starts one task per record and tells these classes when a
record starts and ends. Two rules make concurrency safe:

* records with the same key (one appeal's events) are handled one after another, in offset
  order: a record's task waits for the previous record of its key (:class:`KeyChains`);
* a partition's committed offset only moves past records that are all handled: the commit
  position is the lowest offset still in flight, or the next offset when none is
  (:class:`PartitionProgress`). A crash redelivers whatever was in flight, and the handlers,
  idempotent, apply each record once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable


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
