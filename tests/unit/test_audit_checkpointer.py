"""The checkpointer signs after appends and only then: an idle log costs it nothing."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from appeals_runtime.errors import TransientError
from services.audit.log.checkpointer import Checkpointer
from services.audit.log.integrity import Integrity


class CountingIntegrity:
    def __init__(self) -> None:
        self.signed = 0
        self.fail_next: Exception | None = None
        self.ticks: asyncio.Queue[int] = asyncio.Queue()

    async def checkpoint(self) -> Any:
        self.signed += 1
        self.ticks.put_nowait(self.signed)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error


async def settle() -> None:
    """Let every task that can run, run (no time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def tick_number(integrity: CountingIntegrity, number: int) -> None:
    """Wait until the checkpointer has ticked ``number`` times."""
    while await asyncio.wait_for(integrity.ticks.get(), 5) < number:
        pass


def checkpointer(integrity: CountingIntegrity, grown: asyncio.Event) -> Checkpointer:
    # No interval: a checkpointer that ticked on a timer would tick on every turn of the loop.
    return Checkpointer(cast(Integrity, integrity), grown, interval_s=0)


async def test_it_signs_at_start_and_then_only_after_appends() -> None:
    integrity, grown = CountingIntegrity(), asyncio.Event()
    component = checkpointer(integrity, grown)
    running = asyncio.create_task(component.run())

    await settle()
    assert integrity.signed == 1  # at start: whatever a previous run left unsigned

    grown.set()  # the appender wrote entries
    await tick_number(integrity, 2)
    await settle()
    assert integrity.signed == 2 and not grown.is_set()  # idle again: no further tick

    await component.stop()
    await asyncio.wait_for(running, 5)
    assert integrity.signed == 2


async def test_appends_left_unsigned_are_signed_on_the_way_out() -> None:
    integrity, grown = CountingIntegrity(), asyncio.Event()
    component = Checkpointer(cast(Integrity, integrity), grown, interval_s=3600)
    running = asyncio.create_task(component.run())
    await settle()
    grown.set()
    await settle()  # waiting out its interval

    await component.stop()
    await asyncio.wait_for(running, 5)

    assert integrity.signed == 2


async def test_a_postponed_checkpoint_is_tried_again_after_the_interval() -> None:
    integrity, grown = CountingIntegrity(), asyncio.Event()
    integrity.fail_next = TransientError("store busy")
    component = checkpointer(integrity, grown)
    running = asyncio.create_task(component.run())

    await tick_number(integrity, 2)  # no append needed
    await settle()
    assert integrity.signed == 2

    await component.stop()
    await asyncio.wait_for(running, 5)
