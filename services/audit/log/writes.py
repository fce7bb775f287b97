"""How the audit log's collections take bulk inserts whose unique ``_id`` may be taken already."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.errors import BulkWriteError, OperationFailure

from appeals_runtime import store
from appeals_runtime.errors import TransientError

DUPLICATE_KEY = 11000


def write_failure(error: Mapping[str, Any]) -> Exception:
    """A write error the store reported for one statement, as the exception it stands for."""
    failure = OperationFailure(str(error.get("errmsg", "write failed")), error.get("code"))
    if store.is_contention(failure):
        return TransientError(f"document store busy: {failure}")
    return failure


async def insert_new(
    collection: store.Collection, documents: Sequence[store.Document]
) -> list[int]:
    """Insert ``documents`` (unordered); the positions in the list of those refused because
    their ``_id`` (or another unique key) is taken. Any other refusal raises."""
    if not documents:
        return []
    try:
        await store.available(collection.insert_many(list(documents), ordered=False))
    except BulkWriteError as error:
        errors = error.details.get("writeErrors") or []
        others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if others:
            raise write_failure(others[0]) from error
        return sorted(int(e["index"]) for e in errors)
    return []


async def insert_ignoring_duplicates(
    collection: store.Collection, documents: Sequence[store.Document]
) -> int:
    """Insert what is not there yet (unordered); returns how many were new."""
    return len(documents) - len(await insert_new(collection, documents))
