"""Document store access: one client per process, indexes declared by each repository.

FerretDB 1.x (our local store) has no multi-document transactions, TTL indexes, change streams,
``$facet``/``$lookup`` or atomic findAndModify. Idempotency and exclusivity therefore rest on
unique indexes: insert, and treat ``DuplicateKeyError`` as "already done" (:func:`insert_once`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from appeals_runtime.group_commit import batches_for
from appeals_runtime.query_log import QUERY_LOG_VARIABLE, QueryLog
from appeals_runtime.store_errors import UNAVAILABLE_ERRORS, available, is_contention
from appeals_runtime.tracing import StoreTelemetry

# Failure handling lives in store_errors (group_commit needs it too); its names stay here.
__all__ = [
    "UNAVAILABLE_ERRORS",
    "Collection",
    "Database",
    "Document",
    "IndexSpec",
    "available",
    "check_ready",
    "create_client",
    "ensure_indexes",
    "insert_once",
    "is_contention",
    "position_id",
    "positioned",
    "service_database",
    "stored_time",
]
Document = dict[str, Any]
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]


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


def service_database(base: str, service: str) -> str:
    """The database ``service`` owns: ``{base}_{service}`` (``appeals_intake``, …).

    No service reads another's collections (they share events, not tables), so each keeps its
    own database. On FerretDB's SQLite backend a database is one file with one writer at a time:
    with one database for all, every service's writes queued behind every other's, and a writer
    that finds the lock taken sleeps in SQLite's busy handler (1, 2, 5, 10 … 100 ms) however
    soon the lock is free. On MongoDB it is the usual one-owner-per-database layout.
    """
    return f"{base}_{service}"


def stored_time(moment: datetime) -> datetime:
    """``moment`` at the store's precision (BSON dates keep milliseconds), so a value read back
    equals the value written and events built from either agree."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# Connections per client unless the URL says otherwise (`?maxPoolSize=`). PyMongo's default of
# 100 lets a busy service open dozens, and FerretDB's SQLite backend has one writer: the extra
# connections only turn a short wait in the pool into lock contention in the store (at 50
# appeals/s in the bench, p99 submit→routed 1,006 ms with 100 and 397-465 ms with 16; 6 was too
# few: 1,048 ms, the pool itself became the queue).
DEFAULT_POOL_SIZE = 16


def pool_options(url: str) -> dict[str, Any]:
    """The client's pool size: the URL's own ``maxPoolSize`` if it has one, else ours."""
    return {} if "maxpoolsize=" in url.lower() else {"maxPoolSize": DEFAULT_POOL_SIZE}


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
        **pool_options(url),
        event_listeners=listeners,
    )


async def ensure_indexes(db: Database, specs: Sequence[IndexSpec]) -> None:
    for spec in specs:
        options: dict[str, Any] = {"name": spec.index_name, "unique": spec.unique}
        if spec.partial_filter is not None:
            options["partialFilterExpression"] = dict(spec.partial_filter)
        await db[spec.collection].create_index(list(spec.keys), **options)


async def insert_once(collection: Collection, document: Document) -> bool:
    """Insert ``document``; False when a unique index says it is already there (a no-op).

    This is the pipeline's idempotency primitive: the dedup key lives in the same document as
    the effect, so writing the effect and recording that it happened are one write. Inserts into
    one collection that overlap in time go to the store together (``group_commit``).
    """
    return await batches_for(collection).insert_once(document)


def position_id(key: str, position: int) -> str:
    """The ``_id`` of the document at ``position`` of the chain under ``key``."""
    return f"{key}/{position}"


async def positioned(
    collection: Collection, key: str, *, start: int = 0, chunk: int = 8
) -> list[Document]:
    """The chain under ``key``: the documents at ``position_id(key, n)`` for n = ``start``,
    ``start`` + 1, ... up to the first free position, in order, read by ``$in`` of ``chunk``
    positions at a time. A chain grows by inserting at its first free position (the unique
    ``_id`` refuses a taken one), so it has no gaps and only ``_id`` lookups read it."""
    found: list[Document] = []
    while True:
        first = start + len(found)
        ids = [position_id(key, n) for n in range(first, first + chunk)]
        cursor = collection.find({"_id": {"$in": ids}})
        by_id = {document["_id"]: document for document in await available(cursor.to_list())}
        for identifier in ids:
            document = by_id.get(identifier)
            if document is None:
                return found
            found.append(document)


async def check_ready(db: Database) -> None:
    """Raises when the store cannot be reached (readiness probes)."""
    await asyncio.wait_for(db.command("ping"), timeout=3)
