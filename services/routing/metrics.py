"""Routing's metrics (declared in :mod:`appeals_runtime.metrics`, exposed on routing's /metrics).

Queue gauges report the latest snapshot the timer took of the board, which every routing instance
keeps of every open case, so every instance reports the same numbers: aggregate them with
``max``, not ``sum``. Counters count what this
instance did (each warning, breach or expiry is recorded by exactly one instance): ``sum`` them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from appeals import vocabulary
from appeals_runtime import metrics
from services.routing.board import QueueStats
from services.routing.model import CaseState
from services.routing.repository import PendingReferral

cases_routed = metrics.counter(metrics.CASES_ROUTED)
sla_warnings = metrics.counter(metrics.SLA_WARNINGS)
sla_breaches = metrics.counter(metrics.SLA_BREACHES)
leases_expired = metrics.counter(metrics.LEASES_EXPIRED)
decisions = metrics.counter(metrics.DECISIONS)
time_to_decision = metrics.histogram(metrics.TIME_TO_DECISION)
escalations = metrics.counter(metrics.ESCALATIONS)
offers_made = metrics.counter(metrics.OFFERS)
info_requests = metrics.counter(metrics.INFO_REQUESTS)


def case_labels(case: CaseState) -> dict[str, str]:
    """Queue and platform of a case: the labels its counters carry."""
    return {
        "queue": case.queue,
        "platform": vocabulary.platform_name(case.routing.submission.platform),
    }


@dataclass
class _Snapshot:
    stats: Sequence[QueueStats] = ()
    agents_online: int = 0
    taken_at: datetime | None = None


_latest = _Snapshot()


# Queues seen since start: a queue that empties reports depth 0 instead of vanishing, so a
# drained queue and a queue nobody measures look different on a dashboard.
_seen_queues: set[str] = set()


def record_routed(case: CaseState) -> None:
    labels = case_labels(case)
    cases_routed.add(1, {**labels, "rule": case.routing.rule})
    _seen_queues.add(case.queue)
    # A queue's SLA counters exist (at 0) from its first case on: "no breaches" then reads as 0,
    # not as a series nobody reports, and rate() and increase() see the first breach.
    sla_warnings.add(0, labels)
    sla_breaches.add(0, labels)


def observe(stats: Sequence[QueueStats], agents_online: int, now: datetime) -> None:
    global _latest  # noqa: PLW0603 - the gauges read one process-wide snapshot
    by_queue = {s.queue: s for s in stats}
    _seen_queues.update(by_queue)
    for queue in _seen_queues - by_queue.keys():
        by_queue[queue] = QueueStats(queue, 0, None, 0)
    _latest = _Snapshot([by_queue[q] for q in sorted(by_queue)], agents_online, now)


# Referrals out per body, from the live set (services.routing.referrals.ReferralWatch); a body
# seen once, or named by the policy, reports 0 when nothing is out with it, instead of vanishing.
_referrals_open: Counter[str] = Counter()
_referrals_overdue: Counter[str] = Counter()


def observe_referrals(
    pending: Iterable[PendingReferral], now: datetime, *, bodies: Iterable[str] = ()
) -> None:
    """The referrals out per body now; ``bodies`` report 0 when none is out with them."""
    pending = list(pending)
    reported = {*_referrals_open, *bodies, *(p.body for p in pending)}
    opened = Counter(p.body for p in pending)
    overdue = Counter(p.body for p in pending if now >= p.respond_by)
    for counts, fresh in ((_referrals_open, opened), (_referrals_overdue, overdue)):
        counts.clear()
        counts.update(dict.fromkeys(reported, 0))
        counts.update(fresh)


def _referrals(counts: Counter[str]) -> Callable[[], Iterable[tuple[float, dict[str, str]]]]:
    return lambda: [(counts[body], {"body": body}) for body in sorted(counts)]


def _depth() -> Iterable[tuple[float, dict[str, str]]]:
    return [(s.depth, {"queue": s.queue}) for s in _latest.stats]


def _oldest_age() -> Iterable[tuple[float, dict[str, str]]]:
    now = _latest.taken_at
    return [
        ((now - s.oldest_waiting_since).total_seconds(), {"queue": s.queue})
        for s in _latest.stats
        if now is not None and s.oldest_waiting_since is not None
    ]


def _breached() -> Iterable[tuple[float, dict[str, str]]]:
    return [(s.breached, {"queue": s.queue}) for s in _latest.stats]


def _online() -> Iterable[tuple[float, dict[str, str]]]:
    return [(_latest.agents_online, {})]


metrics.gauge(metrics.QUEUE_DEPTH, _depth)
metrics.gauge(metrics.QUEUE_OLDEST_AGE, _oldest_age)
metrics.gauge(metrics.QUEUE_BREACHED, _breached)
metrics.gauge(metrics.AGENTS_ONLINE, _online)
metrics.gauge(metrics.REFERRALS_OPEN, _referrals(_referrals_open))
metrics.gauge(metrics.REFERRALS_OVERDUE, _referrals(_referrals_overdue))
