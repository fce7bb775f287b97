"""The consumer's bookkeeping for concurrent records: commit positions and per-key order."""

from __future__ import annotations

import asyncio

import pytest

from appeals_runtime.kafka.in_flight import KeyChains, PartitionProgress


def test_the_commit_position_moves_only_past_records_that_are_all_handled() -> None:
    assert PartitionProgress().position is None
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.started(offset)
    assert progress.position == 10
    assert progress.finished(12) is None  # 10 and 11 still in flight
    assert progress.finished(11) is None
    assert progress.position == 10
    assert progress.finished(10) == 13  # 10, 11 and 12 are done: commit at 13
    assert progress.position == 13
    assert progress.finished(13) == 14
    assert progress.position == 14
    assert len(progress) == 0


def test_an_offset_fetched_twice_is_refused() -> None:
    progress = PartitionProgress()
    progress.started(5)
    with pytest.raises(ValueError):
        progress.started(5)


async def test_a_key_waits_for_its_own_previous_task_only() -> None:
    chains = KeyChains()
    gate = asyncio.Event()

    async def slow() -> bool:
        await gate.wait()
        return True

    first = asyncio.ensure_future(slow())
    chains.started("appeal-1", first)
    assert chains.previous("appeal-1") is first
    assert chains.previous("appeal-2") is None
    gate.set()
    await first
    assert chains.previous("appeal-1") is None  # done: nothing to wait for
    assert len(chains) == 0  # and forgotten
