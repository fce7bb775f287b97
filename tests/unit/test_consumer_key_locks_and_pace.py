"""The runner's bookkeeping for delayed records and dead letters (pure, no I/O)."""

from __future__ import annotations

import asyncio

from appeals_runtime.kafka.in_flight import DeadLetterPace, KeyLocks


async def test_one_key_runs_one_record_at_a_time_and_its_lock_is_forgotten_after() -> None:
    locks = KeyLocks()
    order: list[str] = []
    gate = asyncio.Event()

    async def run(key: str, name: str) -> None:
        async with locks.holding(key):
            order.append(f"{name} in")
            if name == "a1":
                await gate.wait()
            order.append(f"{name} out")

    tasks = [asyncio.create_task(run(k, n)) for k, n in (("a", "a1"), ("a", "a2"), ("b", "b1"))]
    await asyncio.sleep(0)
    assert order == ["a1 in", "b1 in", "b1 out"]  # b is not held up by a
    gate.set()
    await asyncio.gather(*tasks)
    assert order[3:] == ["a1 out", "a2 in", "a2 out"]
    assert len(locks) == 0


def test_dead_letters_go_in_a_burst_then_at_the_rate() -> None:
    now = [0.0]
    pace = DeadLetterPace(per_minute=60, burst=2, clock=lambda: now[0])
    assert [pace.wait_s(), pace.wait_s()] == [0.0, 0.0]
    assert pace.wait_s() == 1.0  # one a second: the next token in a second
    now[0] = 0.5
    assert pace.wait_s() == 0.5
    now[0] = 1.0
    assert pace.wait_s() == 0.0
    now[0] = 100.0  # tokens refill up to the burst, not beyond
    assert [pace.wait_s(), pace.wait_s()] == [0.0, 0.0]
    assert pace.wait_s() > 0
