"""The ops page's memory: a bounded ring of recent samples and the flow rates they imply. Pure.

One point per scrape round (every 2 s by default while the page is watched, 15 min kept: at most
450 points of a few hundred bytes; rounds stop while nobody watches, so the charts have a gap).
Rates are per minute over a trailing window, from the counters' increases; a counter that went
down was reset by a restart, and its new value is the increase since (as Prometheus' ``rate``
treats resets). The history lives in the ops process only: a restart starts it afresh, which
is what a live page needs; long-term history is Prometheus' job.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

# The flows charted per stage, from the snapshot's totals.
STAGES = ("received", "routed", "decided", "notified", "notification_failures")
# Other totals charted as levels.
LEVELS = ("queue_depth", "consumer_lag", "dlq_records", "breached_now")
RATE_WINDOW_S = 30.0


def increase(values: Sequence[float]) -> float:
    """How much a counter grew over ``values`` (oldest first), counting resets as restarts."""
    grown = 0.0
    for before, after in itertools.pairwise(values):
        grown += after - before if after >= before else after
    return grown


class History:
    def __init__(self, *, window_s: float, interval_s: float) -> None:
        self.window_s = window_s
        self._points: deque[dict[str, Any]] = deque(maxlen=max(2, int(window_s / interval_s) + 1))

    def add(self, at: float, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        """Record the snapshot taken at ``at`` (epoch seconds); returns the new chart point."""
        totals = snapshot["totals"]
        point: dict[str, Any] = {
            "t": at,
            "totals": {name: totals[name] for name in (*STAGES, *LEVELS)},
            "depth": {row["queue"]: row["depth"] for row in snapshot["queues"]},
        }
        while self._points and self._points[-1]["t"] >= at:
            self._points.pop()  # a clock that stepped back: keep the ring in time order
        while self._points and self._points[0]["t"] < at - self.window_s:
            self._points.popleft()  # from before a pause in watching: out of the window
        self._points.append(point)
        point["rates"] = self.rates(at)
        return point

    def rates(self, now: float) -> dict[str, float]:
        """Per-minute flow of each stage over the trailing window ending at ``now``."""
        recent = [p for p in self._points if now - RATE_WINDOW_S <= p["t"] <= now]
        if len(recent) < 2:
            return dict.fromkeys(STAGES, 0.0)
        span = recent[-1]["t"] - recent[0]["t"]
        return {
            stage: round(increase([p["totals"][stage] for p in recent]) * 60 / span, 2)
            for stage in STAGES
        }

    def points(self) -> list[dict[str, Any]]:
        return list(self._points)

    def __len__(self) -> int:
        return len(self._points)
