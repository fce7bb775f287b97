"""Percentiles and the summaries every hop gets. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypedDict


class Summary(TypedDict):
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (``fraction`` in [0, 1]).

    Nearest rank, not interpolation: a reported p99 is a latency some request really had.
    """
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(values: Iterable[float]) -> Summary:
    ordered = sorted(values)
    if not ordered:
        return Summary(count=0, p50=None, p95=None, p99=None, max=None)
    return Summary(
        count=len(ordered),
        p50=round(percentile(ordered, 0.50), 1),
        p95=round(percentile(ordered, 0.95), 1),
        p99=round(percentile(ordered, 0.99), 1),
        max=round(ordered[-1], 1),
    )


def rate(count: int, seconds: float) -> float:
    """Events per second, 0 for an empty or instant window."""
    return round(count / seconds, 2) if seconds > 0 else 0.0
