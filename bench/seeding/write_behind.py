"""A database wrapper that turns a repository's one-document writes into bulk inserts, for
seeding through a service's own code.

A service appends and indexes an event at a time: an insert per entry, an update per event on
its appeal's document. Right for a consumer, far too slow for seeding millions of events. Handed
this wrapper instead of the database, the same code runs unchanged, while

* ``insert_one`` calls are buffered per collection and sent as unordered ``insert_many`` batches
  (two in flight);
* update statements (``update_one`` or an ``update`` command) that build a document this seeding
  creates are applied in memory (``updates.py``); the finished document is inserted with the
  next batch. A statement that cannot be applied in memory goes to the store as it is;
* every other operation, reads included, first stores what is pending for its collection, so the
  code reads its own writes as it would against the real database.

Only for seeding new documents into a store nobody else writes meanwhile: a buffered insert
cannot report a duplicate key to its caller (duplicates found when a batch is stored are counted
instead), and an upsert of an ``_id`` not written by this seeding is taken to create it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from pymongo.errors import BulkWriteError
from pymongo.results import InsertOneResult, UpdateResult

from appeals_runtime import store
from bench.seeding import updates

BATCH = 2000
IN_FLIGHT = 2
DUPLICATE_KEY = 11000
# Cursor methods that only describe the query; anything else on a cursor runs it.
_CURSOR_MODIFIERS = frozenset({"batch_size", "sort", "limit", "skip", "hint", "max_time_ms"})


class WriteBehind:
    """Buffers the writes of every collection taken from it (see the module's docstring)."""

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
        # Documents built in memory by update statements, by collection and _id.
        self._built: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failures: list[BaseException] = []
        self.stored = 0
        self.applied_in_memory = 0
        # Inserts a unique index refused, by collection (a re-published checkpoint is one).
        self.duplicates: Counter[str] = Counter()

    def __getitem__(self, name: str) -> WriteBehindCollection:
        return WriteBehindCollection(self, self._db[name], name)

    def get_collection(self, name: str, **_: Any) -> WriteBehindCollection:
        return self[name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    # Writes ----------------------------------------------------------------------------------

    def buffer(self, collection: str, document: dict[str, Any]) -> bool:
        """Keep ``document`` for the next batch; True when that batch is full."""
        if self._on_insert is not None:
            self._on_insert(collection, document)
        buffer = self._buffers[collection]
        buffer.append(document)
        return len(buffer) >= self._batch

    def apply_in_memory(self, collection: str, statements: list[Mapping[str, Any]]) -> bool:
        """Apply update statements to documents built here; False (nothing applied) when one of
        them cannot be: it names a document this seeding did not create, or is unsupported."""
        built = self._built[collection]
        try:
            for statement in statements:
                updates.check(statement)
                if statement["q"]["_id"] not in built and not statement.get("upsert"):
                    return False
        except updates.Unsupported:
            return False
        for statement in statements:
            query, update = statement["q"], statement["u"]
            document = built.get(query["_id"])
            if document is None:
                document = updates.created(query)
                updates.apply(document, update, inserting=True)
                built[query["_id"]] = document
            elif updates.matches(document, query):
                updates.apply(document, update, inserting=False)
            self.applied_in_memory += 1
        return True

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

    async def flush(self, collection: str | None = None) -> None:
        """Store what is pending (for ``collection``, or all) and wait until it is stored."""
        names = [collection] if collection else list({*self._buffers, *self._built})
        for name in names:
            built = self._built.pop(name, {})
            if built:
                if self._on_insert is not None:
                    for document in built.values():
                        self._on_insert(name, document)
                self._buffers[name].extend(built.values())
            await self.send(name)
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

    # Commands --------------------------------------------------------------------------------

    async def command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(command, Mapping) and isinstance(command.get("update"), str):
            statements = list(command.get("updates") or [])
            if self.apply_in_memory(command["update"], statements):
                return {"n": len(statements), "nModified": len(statements), "ok": 1.0}
        target = next(iter(command.values()), None) if isinstance(command, Mapping) else None
        await self.flush(target if isinstance(target, str) else None)
        return await self._db.command(command, *args, **kwargs)


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

    async def update_one(
        self, query: Mapping[str, Any], update: Mapping[str, Any], upsert: bool = False,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        statement = {"q": query, "u": update, "upsert": upsert}
        if not kwargs and self._owner.apply_in_memory(self._name, [statement]):
            return UpdateResult({"n": 1, "nModified": 1}, acknowledged=True)
        await self._owner.flush(self._name)
        return await self._real.update_one(query, update, upsert=upsert, **kwargs)

    def find(self, *args: Any, **kwargs: Any) -> _DeferredCursor:
        return _DeferredCursor(
            lambda: self._owner.flush(self._name), lambda: self._real.find(*args, **kwargs)
        )

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def after_flush(*args: Any, **kwargs: Any) -> Any:
            await self._owner.flush(self._name)
            return await attribute(*args, **kwargs)

        return after_flush


class _DeferredCursor:
    """``find()``'s cursor, opened only once what is pending for its collection is stored."""

    def __init__(self, flush: Callable[[], Any], open_cursor: Callable[[], Any]) -> None:
        self._flush = flush
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
            await self._flush()
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
