"""Document store access: one client per process, indexes declared by each repository.

FerretDB 1.x (our local store) has no multi-document transactions, TTL indexes, change streams,
``$facet``/``$lookup`` or atomic findAndModify. Idempotency and exclusivity therefore rest on
unique indexes: insert, and treat ``DuplicateKeyError`` as "already done" (:func:`insert_once`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from appeals_runtime.errors import TransientError
from appeals_runtime.query_log import QUERY_LOG_VARIABLE, QueryLog
from appeals_runtime.tracing import StoreTelemetry

ResultT = TypeVar("ResultT")
Document = dict[str, Any]
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]

# pymongo errors that mean "the store is unreachable right now", never "this data is wrong".
UNAVAILABLE_ERRORS = (ConnectionFailure, ServerSelectionTimeoutError)
# Server answers that mean "busy, try again": MongoDB's lock and write-conflict codes and
# replica-set elections; FerretDB's SQLite handler reports a held write lock as an internal error
# whose message says "database is locked" (SQLITE_BUSY).
_BUSY_CODES = frozenset({24, 112, 189, 262, 10107, 11600, 11602, 13435, 13436})
_BUSY_MESSAGES = ("database is locked", "sqlite_busy", "database table is locked")


def is_contention(error: OperationFailure) -> bool:
    """Whether the store refused an operation only because it was busy (retrying may succeed)."""
    if error.code in _BUSY_CODES or error.has_error_label("RetryableWriteError"):
        return True
    text = str(error).lower()
    return any(message in text for message in _BUSY_MESSAGES)


@dataclass(frozen=True)
class IndexSpec:
    """An index a repository relies on; created (idempotently) at start-up."""

    collection: str
    keys: Sequence[tuple[str, int]]
    unique: bool = False
    name: str | None = None
    partial_filter: Mapping[str, Any] | None = field(default=None)

    @property
    def index_name(self) -> str:
        return self.name or "_".join(f"{key}_{direction}" for key, direction in self.keys)


def stored_time(moment: datetime) -> datetime:
    """``moment`` at the store's precision (BSON dates keep milliseconds), so a value read back
    equals the value written and events built from either agree."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def create_client(url: str, *, app_name: str) -> AsyncMongoClient[Document]:
    listeners: list[monitoring.CommandListener] = [StoreTelemetry()]
    if query_log := os.environ.get(QUERY_LOG_VARIABLE):
        listeners.append(QueryLog(Path(query_log), app_name))
    return AsyncMongoClient(
        url,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
        event_listeners=listeners,
    )


async def ensure_indexes(db: Database, specs: Sequence[IndexSpec]) -> None:
    for spec in specs:
        options: dict[str, Any] = {"name": spec.index_name, "unique": spec.unique}
        if spec.partial_filter is not None:
            options["partialFilterExpression"] = dict(spec.partial_filter)
        await db[spec.collection].create_index(list(spec.keys), **options)


async def available(operation: Awaitable[ResultT]) -> ResultT:
    """Await a store operation; an unreachable or busy store becomes a :class:`TransientError`,
    which consumers retry with backoff and APIs answer with 503 and Retry-After."""
    try:
        return await operation
    except UNAVAILABLE_ERRORS as error:
        raise TransientError(f"document store unavailable: {error}") from error
    except OperationFailure as error:
        if is_contention(error):
            raise TransientError(f"document store busy: {error}") from error
        raise


async def insert_once(collection: Collection, document: Document) -> bool:
    """Insert ``document``; False when a unique index says it is already there (a no-op).

    This is the pipeline's idempotency primitive: the dedup key lives in the same document as
    the effect, so writing the effect and recording that it happened are one write.
    """
    try:
        await available(collection.insert_one(document))
    except DuplicateKeyError:
        return False
    return True


async def check_ready(db: Database) -> None:
    """Raises when the store cannot be reached (readiness probes)."""
    await asyncio.wait_for(db.command("ping"), timeout=3)
