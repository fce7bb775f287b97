"""How store failures are told apart: unreachable or busy (retry later) versus wrong data."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from pymongo.errors import ConnectionFailure, OperationFailure, ServerSelectionTimeoutError

from appeals_runtime.errors import TransientError

ResultT = TypeVar("ResultT")

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
