"""Token buckets per named dimension (intake: appellant, device, network, surface; live help:
address, account, contact): abuse stops, people do not.

Limits are checked before any I/O, so a flood from one caller costs the others nothing: the
flood is answered 429 from memory. Buckets live in this process (bounded, least recently used
evicted); with N instances behind a balancer the effective limit is up to N times the
configured one, which is the accepted trade-off for not putting a store round trip on every
request (FerretDB has no atomic counters).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# The longest wait a refusal names: a bucket that never refills (``per_hour`` 0) is not
# "infinitely" far away, and Retry-After must be a finite number of seconds.
MAX_WAIT_S = 24 * 3600.0


@dataclass(frozen=True)
class Limit:
    # Requests allowed at once (burst), then ``per_hour`` refilled evenly.
    burst: int
    per_hour: float

    @property
    def per_second(self) -> float:
        return self.per_hour / 3600


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        limits: dict[str, Limit],
        *,
        max_keys: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def acquire(self, keys: Iterable[tuple[str, str]]) -> float | None:
        """Take one token from every (dimension, key) bucket, or none of them.

        Returns None when allowed, else the seconds until every bucket has a token again.
        """
        now = self._clock()
        wanted = [(d, k) for d, k in keys if k and d in self._limits]
        buckets = [(self._limits[d], self._bucket(d, k, now)) for d, k in wanted]
        waits = [self._wait(limit, bucket) for limit, bucket in buckets]
        if any(waits):
            return max(waits)
        for _, bucket in buckets:
            bucket.tokens -= 1
        return None

    def _bucket(self, dimension: str, key: str, now: float) -> _Bucket:
        limit = self._limits[dimension]
        bucket = self._buckets.get((dimension, key))
        if bucket is None:
            bucket = _Bucket(float(limit.burst), now)
            self._buckets[(dimension, key)] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end((dimension, key))
            bucket.tokens = min(
                limit.burst, bucket.tokens + (now - bucket.updated) * limit.per_second
            )
            bucket.updated = now
        return bucket

    @staticmethod
    def _wait(limit: Limit, bucket: _Bucket) -> float:
        if bucket.tokens >= 1:
            return 0.0
        if limit.per_second <= 0:
            return MAX_WAIT_S
        return min(MAX_WAIT_S, (1 - bucket.tokens) / limit.per_second)
