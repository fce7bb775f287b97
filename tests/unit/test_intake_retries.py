"""A busy store is retried briefly; an unreachable one, or one busy for too long, is not (pure:
the operations are stand-ins that fail the way ``store.available`` reports failures)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from pymongo.errors import ConnectionFailure, OperationFailure

from appeals_runtime.errors import TransientError
from services.intake.retries import is_busy, retried_when_busy


def caused_by(cause: Exception, what: str) -> TransientError:
    """A TransientError as ``store.available`` raises it (``raise ... from cause``)."""
    error = TransientError(f"document store {what}: {cause}")
    error.__cause__ = cause
    return error


def busy() -> TransientError:
    # What FerretDB's SQLite handler answers when the write lock stays taken.
    return caused_by(OperationFailure("database is locked (5) (SQLITE_BUSY)", code=1), "busy")


def write_conflict() -> TransientError:
    return caused_by(OperationFailure("WriteConflict", code=112), "busy")


def unavailable() -> TransientError:
    return caused_by(ConnectionFailure("connection refused"), "unavailable")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(
    errors: list[TransientError], clock: Clock, *, takes_s: float = 0.001
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    calls = [0]

    async def operation() -> str:
        calls[0] += 1
        clock.now += takes_s
        if errors:
            raise errors.pop(0)
        return "done"

    return operation, calls


async def test_a_busy_store_is_retried_with_growing_jittered_pauses_until_it_answers() -> None:
    clock = Clock()
    operation, calls = failing([busy(), write_conflict()], clock)
    result = await retried_when_busy(operation, clock=clock, sleep=clock.sleep, jitter=lambda: 0.5)
    assert (result, calls[0]) == ("done", 3)
    assert clock.slept[1] > clock.slept[0] > 0


async def test_an_unreachable_store_is_not_retried_here() -> None:
    clock = Clock()
    operation, calls = failing([unavailable()], clock)
    with pytest.raises(TransientError, match="unavailable"):
        await retried_when_busy(operation, clock=clock, sleep=clock.sleep)
    assert calls[0] == 1
    assert not is_busy(unavailable()) and is_busy(busy()) and is_busy(write_conflict())


async def test_retries_stop_after_the_attempts_or_the_budget_and_raise_the_last_error() -> None:
    clock = Clock()
    operation, calls = failing([busy() for _ in range(10)], clock)
    with pytest.raises(TransientError, match="busy"):
        await retried_when_busy(operation, attempts=3, clock=clock, sleep=clock.sleep)
    assert calls[0] == 3
    # A store that kept the first attempt waiting (SQLite's busy timeout) gets no second one.
    clock = Clock()
    operation, calls = failing([busy()], clock, takes_s=10.0)
    with pytest.raises(TransientError):
        await retried_when_busy(operation, budget_s=1.0, clock=clock, sleep=clock.sleep)
    assert calls[0] == 1
