"""Routing's metrics (OpenTelemetry, exposed for Prometheus on routing's /metrics).

Queue gauges report the latest snapshot the timer took of the store, so every routing instance
reports the same numbers: aggregate them with ``max``, not ``sum``. Counters count what this
instance did (each warning, breach or expiry is recorded by exactly one instance): ``sum`` them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from services.routing.repository import QueueStats

_meter = metrics.get_meter("services.routing")

cases_routed = _meter.create_counter(
    "routing.cases.routed", unit="{case}", description="Appeals placed, by queue and rule"
)
sla_warnings = _meter.create_counter(
    "routing.sla.warnings", unit="{case}", description="Cases that neared their due time undecided"
)
sla_breaches = _meter.create_counter(
    "routing.sla.breaches", unit="{case}", description="Cases that passed their due time undecided"
)
leases_expired = _meter.create_counter(
    "routing.leases.expired", unit="{claim}", description="Claims whose lease ran out"
)
decisions = _meter.create_counter(
    "routing.decisions", unit="{decision}", description="Reviews recorded, by outcome and status"
)
offers_made = _meter.create_counter(
    "routing.offers", unit="{offer}", description="Cases offered (reserved) to an agent"
)


@dataclass
class _Snapshot:
    stats: Sequence[QueueStats] = ()
    agents_online: int = 0
    taken_at: datetime | None = None
    by_queue: dict[str, QueueStats] = field(default_factory=dict)


_latest = _Snapshot()


def observe(stats: Sequence[QueueStats], agents_online: int, now: datetime) -> None:
    global _latest  # noqa: PLW0603 - the gauges read one process-wide snapshot
    _latest = _Snapshot(stats, agents_online, now, {s.queue: s for s in stats})


def _depth(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(s.depth, {"queue": s.queue}) for s in _latest.stats]


def _oldest_age(_: CallbackOptions) -> Iterable[Observation]:
    now = _latest.taken_at
    return [
        Observation((now - s.oldest_waiting_since).total_seconds(), {"queue": s.queue})
        for s in _latest.stats
        if now is not None and s.oldest_waiting_since is not None
    ]


def _breached(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(s.breached, {"queue": s.queue}) for s in _latest.stats]


def _online(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(_latest.agents_online)]


_meter.create_observable_gauge(
    "routing.queue.depth", [_depth], unit="{case}", description="Cases waiting for a reviewer"
)
_meter.create_observable_gauge(
    "routing.queue.oldest_age", [_oldest_age], unit="s",
    description="How long the longest-waiting case of the queue has waited",
)  # fmt: skip
_meter.create_observable_gauge(
    "routing.queue.breached", [_breached], unit="{case}",
    description="Open cases past their SLA due time",
)  # fmt: skip
_meter.create_observable_gauge(
    "routing.agents.online", [_online], unit="{agent}", description="Agents with a stream open"
)
