"""Two independent awaits at once, with the errors of one await."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Await ``first`` and ``second`` side by side (one round trip's wait instead of two).

    Both have finished when this returns or raises, so nothing of a failed call runs on behind
    the caller's back (a retry never overlaps it); an error is raised as itself, not wrapped in
    an exception group, so the consumer runner still tells transient errors from bad messages.
    """
    one, two = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(one, BaseException):
        raise one
    if isinstance(two, BaseException):
        raise two
    return one, two
