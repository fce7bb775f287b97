"""A database wrapper that turns single inserts into bulk inserts, for seeding through a
service's own repository code.

The audit service appends one event at a time (``insert_one`` per entry and per index
document), which is right for a consumer and far too slow for seeding millions of entries. Handed
this wrapper instead of the database, the same code runs unchanged while its ``insert_one`` calls
are buffered per collection and sent as unordered ``insert_many`` batches (two in flight). Every
other operation, reads included, first waits until everything buffered is stored, so the code
reads its own writes as it would against the real database.

Only for seeding a store nobody else writes meanwhile: a buffered insert cannot report a
duplicate key to its caller. Duplicates found when a batch is stored are counted instead.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from pymongo.errors import BulkWriteError
from pymongo.results import InsertOneResult

from appeals_runtime import store

BATCH = 2000
IN_FLIGHT = 2
DUPLICATE_KEY = 11000
# Cursor methods that only describe the query; anything else on a cursor runs it.
_CURSOR_MODIFIERS = frozenset({"batch_size", "sort", "limit", "skip", "hint", "max_time_ms"})


class WriteBehind:
    """Buffers and batches the inserts of every collection taken from it."""

    def __init__(
        self,
        db: store.Database,
        *,
        batch: int = BATCH,
        on_insert: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self._db = db
        self._batch = batch
        self._on_insert = on_insert
        self._buffers: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failures: list[BaseException] = []
        self.stored = 0
        # Inserts a unique index refused, by collection (a re-published checkpoint is one).
        self.duplicates: Counter[str] = Counter()

    def __getitem__(self, name: str) -> WriteBehindCollection:
        return WriteBehindCollection(self, self._db[name], name)

    def get_collection(self, name: str, **_: Any) -> WriteBehindCollection:
        return self[name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def buffer(self, collection: str, document: dict[str, Any]) -> bool:
        """Keep ``document`` for the next batch; True when that batch is full."""
        if self._on_insert is not None:
            self._on_insert(collection, document)
        buffer = self._buffers[collection]
        buffer.append(document)
        return len(buffer) >= self._batch

    async def send(self, collection: str) -> None:
        documents = self._buffers.pop(collection, [])
        if not documents:
            return
        while len(self._in_flight) >= IN_FLIGHT:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
        self._raise_failure()
        task = asyncio.create_task(self._insert(collection, documents))
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    async def flush(self) -> None:
        """Store everything buffered and wait until it is stored."""
        for collection in list(self._buffers):
            await self.send(collection)
        if self._in_flight:
            await asyncio.wait(self._in_flight)
        self._raise_failure()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failures.append(task.exception())  # type: ignore[arg-type]

    def _raise_failure(self) -> None:
        if self._failures:
            raise self._failures[0]

    async def _insert(self, collection: str, documents: list[dict[str, Any]]) -> None:
        try:
            await self._db[collection].insert_many(documents, ordered=False)
            self.stored += len(documents)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            self.duplicates[collection] += len(errors)
            self.stored += int(error.details.get("nInserted", 0))


class WriteBehindCollection:
    def __init__(self, owner: WriteBehind, real: store.Collection, name: str) -> None:
        self._owner = owner
        self._real = real
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def insert_one(self, document: dict[str, Any], *_: Any, **__: Any) -> InsertOneResult:
        if self._owner.buffer(self._name, document):
            await self._owner.send(self._name)
        return InsertOneResult(document.get("_id"), acknowledged=True)

    def find(self, *args: Any, **kwargs: Any) -> _DeferredCursor:
        return _DeferredCursor(self._owner, lambda: self._real.find(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def after_flush(*args: Any, **kwargs: Any) -> Any:
            await self._owner.flush()
            return await attribute(*args, **kwargs)

        return after_flush


class _DeferredCursor:
    """``find()``'s cursor, opened only once everything buffered is stored."""

    def __init__(self, owner: WriteBehind, open_cursor: Callable[[], Any]) -> None:
        self._owner = owner
        self._open = open_cursor
        self._modifiers: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._cursor: Any = None

    def __getattr__(self, name: str) -> Any:
        if name in _CURSOR_MODIFIERS:

            def modify(*args: Any, **kwargs: Any) -> _DeferredCursor:
                self._modifiers.append((name, args, kwargs))
                return self

            return modify

        async def run(*args: Any, **kwargs: Any) -> Any:
            cursor = await self._opened()
            return await getattr(cursor, name)(*args, **kwargs)

        return run

    async def _opened(self) -> Any:
        if self._cursor is None:
            await self._owner.flush()
            cursor = self._open()
            for name, args, kwargs in self._modifiers:
                cursor = getattr(cursor, name)(*args, **kwargs)
            self._cursor = cursor
        return self._cursor

    def __aiter__(self) -> _DeferredCursor:
        return self

    async def __anext__(self) -> Any:
        cursor = await self._opened()
        return await cursor.__anext__()
