"""Routing's business metrics: declared here, exposed on routing's /metrics.

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
from appeals_runtime.metrics import Kind, declare
from services.routing.board import QueueStats
from services.routing.model import CaseState
from services.routing.repository import PendingReferral

# Seconds from receipt to decision: from a quick review to a two-week one.
DECISION_BUCKETS_S: tuple[float, ...] = (
    60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400,
)  # fmt: skip

CASES_ROUTED = declare(
    "appeals.routing.routed", Kind.COUNTER, "{case}",
    "Appeals placed in a review queue, by queue, platform and matching rule",
    ("queue", "platform", "rule"),
)  # fmt: skip
QUEUE_DEPTH = declare(
    "appeals.routing.queue.depth", Kind.GAUGE, "{case}",
    "Cases waiting for a reviewer (a store snapshot: aggregate instances with max, not sum)",
    ("queue",),
)  # fmt: skip
QUEUE_OLDEST_AGE = declare(
    "appeals.routing.queue.oldest_age", Kind.GAUGE, "s",
    "How long the longest-waiting case of the queue has waited",
    ("queue",),
)  # fmt: skip
QUEUE_BREACHED = declare(
    "appeals.routing.queue.breached", Kind.GAUGE, "{case}",
    "Open cases past their SLA due time",
    ("queue",),
)  # fmt: skip
INFO_REQUESTS = declare(
    "appeals.routing.info_requests", Kind.COUNTER, "{request}",
    "Requests for more information sent to appellants",
    ("queue", "platform"),
)  # fmt: skip
REFERRALS_OPEN = declare(
    "appeals.routing.referrals.open", Kind.GAUGE, "{case}",
    "Cases out with an external body (Oversight Board, out-of-court body) awaiting its decision",
    ("body",),
)  # fmt: skip
REFERRALS_OVERDUE = declare(
    "appeals.routing.referrals.overdue", Kind.GAUGE, "{case}",
    "Referrals whose decision is past its respond-by date",
    ("body",),
)  # fmt: skip
AGENTS_ONLINE = declare(
    "appeals.routing.agents.online", Kind.GAUGE, "{agent}", "Agents with a desk stream open"
)
SLA_WARNINGS = declare(
    "appeals.routing.sla.warnings", Kind.COUNTER, "{case}",
    "Cases that neared their due time undecided (each counted once)",
    ("queue", "platform"),
)  # fmt: skip
SLA_BREACHES = declare(
    "appeals.routing.sla.breaches", Kind.COUNTER, "{case}",
    "Cases that passed their due time undecided (each counted once)",
    ("queue", "platform"),
)  # fmt: skip
DECISIONS = declare(
    "appeals.routing.decisions", Kind.COUNTER, "{decision}",
    "Reviews recorded, by outcome (upheld, overturned, partially_overturned), queue and platform; "
    "status says whether the review closed the case or awaits a second reviewer",
    ("outcome", "queue", "platform", "status"),
)  # fmt: skip
TIME_TO_DECISION = declare(
    "appeals.routing.decision.duration", Kind.HISTOGRAM, "s",
    "From the appeal's receipt to the decision that closed it",
    ("queue", "platform", "outcome"),
    DECISION_BUCKETS_S,
)  # fmt: skip
ESCALATIONS = declare(
    "appeals.routing.escalations", Kind.COUNTER, "{case}",
    "Cases escalated, by target tier",
    ("tier",),
)  # fmt: skip
OFFERS = declare(
    "appeals.routing.offers", Kind.COUNTER, "{offer}", "Cases offered (reserved) to an agent",
    ("queue",),
)  # fmt: skip
LEASES_EXPIRED = declare(
    "appeals.routing.leases.expired", Kind.COUNTER, "{claim}", "Claims whose lease ran out",
    ("queue",),
)  # fmt: skip
POLICY_RELOADS = declare(
    "appeals.routing.policy.reloads", Kind.COUNTER, "{reload}",
    "Routing policy file re-reads, by outcome (applied, rejected)",
    ("outcome",),
)  # fmt: skip

cases_routed = metrics.counter(CASES_ROUTED)
sla_warnings = metrics.counter(SLA_WARNINGS)
sla_breaches = metrics.counter(SLA_BREACHES)
leases_expired = metrics.counter(LEASES_EXPIRED)
decisions = metrics.counter(DECISIONS)
time_to_decision = metrics.histogram(TIME_TO_DECISION)
escalations = metrics.counter(ESCALATIONS)
offers_made = metrics.counter(OFFERS)
info_requests = metrics.counter(INFO_REQUESTS)
policy_reloads = metrics.counter(POLICY_RELOADS)


def case_labels(case: CaseState) -> dict[str, str]:
    """Queue and platform of a case: the labels its counters carry."""
    return {
        "queue": case.queue,
        "platform": vocabulary.platform_name(case.routing.platform),
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


metrics.gauge(QUEUE_DEPTH, _depth)
metrics.gauge(QUEUE_OLDEST_AGE, _oldest_age)
metrics.gauge(QUEUE_BREACHED, _breached)
metrics.gauge(AGENTS_ONLINE, _online)
metrics.gauge(REFERRALS_OPEN, _referrals(_referrals_open))
metrics.gauge(REFERRALS_OVERDUE, _referrals(_referrals_overdue))


# --- live-help chats (services.routing.chats) ----------------------------------------------------

CHATS_WAITING = declare(
    "appeals.routing.chats.waiting", Kind.GAUGE, "{chat}",
    "Live-help chats waiting for an agent (the live collection's count: aggregate instances "
    "with max, not sum)",
)  # fmt: skip
CHAT_OFFERS = declare(
    "appeals.routing.chats.offers", Kind.COUNTER, "{offer}",
    "Live-help chats offered (reserved) to an agent, by platform and topic",
    ("platform", "topic"),
)  # fmt: skip
CHATS_ACCEPTED = declare(
    "appeals.routing.chats.accepted", Kind.COUNTER, "{chat}",
    "Live-help chats an agent accepted (help assigned them), by platform and topic",
    ("platform", "topic"),
)  # fmt: skip

chat_offers = metrics.counter(CHAT_OFFERS)
chats_accepted = metrics.counter(CHATS_ACCEPTED)
# None until the first count: no chat deployment reports no series rather than a false 0.
_chats_waiting: list[int] = []


def observe_chats_waiting(count: int) -> None:
    _chats_waiting[:] = [count]


metrics.gauge(CHATS_WAITING, lambda: [(float(n), {}) for n in _chats_waiting])
