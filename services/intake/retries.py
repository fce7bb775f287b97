"""A busy store is retried briefly within the request; what stays busy is answered 503.

Concurrent writers make the store refuse an operation now and then (SQLite's write lock,
MongoDB's write conflicts): the operation did nothing and usually succeeds a few milliseconds
later. An unreachable store is not retried here: it will not be back within a request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo.errors import OperationFailure

from appeals_runtime import store
from appeals_runtime.errors import TransientError

T = TypeVar("T")

ATTEMPTS = 4
# Retries start only while this much of the request's time has been spent on the operation; a
# store that kept an operation waiting longer (e.g. SQLite's busy timeout) is answered 503.
BUDGET_S = 1.0
FIRST_BACKOFF_S = 0.01


def is_busy(error: TransientError) -> bool:
    """Whether the store refused only because it was busy (see ``store.available``)."""
    cause = error.__cause__
    return isinstance(cause, OperationFailure) and store.is_contention(cause)


async def retried_when_busy(
    operation: Callable[[], Awaitable[T]],
    *,
    attempts: int = ATTEMPTS,
    budget_s: float = BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    """Run ``operation``; when the store was busy, again after a short jittered backoff, up to
    ``attempts`` times and only while within ``budget_s``. The last error is raised as it was."""
    started = clock()
    backoff = FIRST_BACKOFF_S
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except TransientError as error:
            waited = clock() - started
            if attempt == attempts or not is_busy(error) or waited + backoff > budget_s:
                raise
        # Full jitter: writers that collided do not collide again in step.
        await sleep(backoff * (0.5 + jitter()))
        backoff *= 4
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
