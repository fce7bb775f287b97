"""Token buckets (pure, with a controllable clock)."""

from __future__ import annotations

from appeals_runtime.rate_limits import MAX_WAIT_S, Limit, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_a_wait_until_the_next_token() -> None:
    clock = Clock()
    limiter = RateLimiter({"appellant": Limit(burst=3, per_hour=360)}, clock=clock)
    assert [limiter.acquire([("appellant", "a")]) for _ in range(3)] == [None, None, None]
    wait = limiter.acquire([("appellant", "a")])
    assert wait is not None and 9.9 < wait <= 10.0  # 360/hour = one every 10 s
    clock.now += 10
    assert limiter.acquire([("appellant", "a")]) is None


def test_one_appellant_exhausting_their_bucket_costs_another_nothing() -> None:
    limiter = RateLimiter({"appellant": Limit(burst=2, per_hour=0)}, clock=Clock())
    for _ in range(2):
        limiter.acquire([("appellant", "flooder")])
    assert limiter.acquire([("appellant", "flooder")]) is not None
    assert limiter.acquire([("appellant", "someone-else")]) is None


def test_all_dimensions_or_none_take_a_token() -> None:
    limiter = RateLimiter(
        {"appellant": Limit(burst=5, per_hour=0), "device": Limit(burst=1, per_hour=0)},
        clock=Clock(),
    )
    assert limiter.acquire([("appellant", "a"), ("device", "d1")]) is None
    assert limiter.acquire([("appellant", "a"), ("device", "d1")]) is not None
    # the refused request took no appellant token: 4 remain
    assert all(limiter.acquire([("appellant", "a")]) is None for _ in range(4))


def test_missing_hints_and_unknown_dimensions_are_not_limited() -> None:
    limiter = RateLimiter({"device": Limit(burst=1, per_hour=0)}, clock=Clock())
    assert all(limiter.acquire([("device", ""), ("other", "x")]) is None for _ in range(5))


def test_memory_is_bounded() -> None:
    limiter = RateLimiter({"appellant": Limit(burst=1, per_hour=0)}, max_keys=10, clock=Clock())
    for i in range(100):
        limiter.acquire([("appellant", str(i))])
    assert len(limiter._buckets) == 10


def test_a_bucket_that_never_refills_names_a_finite_wait() -> None:
    # Retry-After must be a number of seconds; an infinite one broke the 429 answer.
    limiter = RateLimiter({"appellant": Limit(burst=1, per_hour=0)}, clock=Clock())
    assert limiter.acquire([("appellant", "a")]) is None
    assert limiter.acquire([("appellant", "a")]) == MAX_WAIT_S
