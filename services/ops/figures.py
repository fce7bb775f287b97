"""What the ops page shows, derived from the services' Prometheus metrics. Pure.

The ops service scrapes every service's ``/metrics`` (``scraper``); this module turns one
round of scrapes into a snapshot of the pipeline: appeals received per platform and channel,
routed per queue, decided by outcome (reversals = overturned in whole or in part), queue depths,
oldest waits and SLA figures, notifications delivered and failed per channel, consumer lag and
dead-lettered records; and live help's chats: waiting (routing's count), opened per topic, closed
per resolution, first-answer and resolution times (p50 and p90 estimated from the histograms'
buckets, as Prometheus' ``histogram_quantile`` does). Metric names and labels come only from
:mod:`services.ops.exposed` (the page's copy of what it reads, checked against each service's
declarations by the tests), so a renamed metric cannot silently empty the page.

A metric no target exposes yet is reported in ``missing`` and counts as 0: the page says
"no data" rather than failing. Counters (what each process did) are summed over instances; gauges
that are snapshots of shared state (queue depth, lag, DLQ size: every routing instance reports the
same store) are aggregated with ``max`` per series, then added up over queues or partitions.
Histograms' buckets are summed over instances per bound (each process counts its own
observations) before a quantile is read from them.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client.parser import text_string_to_metric_families

from appeals_runtime.metrics import Kind, Metric, prometheus_label
from services.ops import exposed as m

# One series: its labels and value.
Series = tuple[Mapping[str, str], float]
# Every series a target exposed, by series name (``appeals_intake_received_total``, ...).
Exposition = Mapping[str, Sequence[Series]]
# A histogram's buckets: (upper bound, observations at or below it), as Prometheus' ``le``
# series; the last bound is ``+Inf`` (every observation).
Buckets = Sequence[tuple[float, float]]

REVERSAL_OUTCOMES = frozenset({"overturned", "partially_overturned"})
# The ``status`` label of a review that closed its case (others await a second reviewer).
FINAL_DECISION = "decided"


# Where each headline figure comes from: a figure whose metrics no target exposes shows "no data".
FIGURE_SOURCES: dict[str, tuple[Metric, ...]] = {
    "received": (m.APPEALS_RECEIVED,),
    "rejected": (m.APPEALS_REJECTED,),
    "routed": (m.CASES_ROUTED,),
    "decided": (m.DECISIONS,),
    "reversals": (m.DECISIONS,),
    "notified": (m.NOTIFICATIONS_DELIVERED,),
    "notification_failures": (m.NOTIFICATIONS_FAILED,),
    "sla_warnings": (m.SLA_WARNINGS,),
    "sla_breaches": (m.SLA_BREACHES,),
    "breached_now": (m.QUEUE_BREACHED,),
    "queue_depth": (m.QUEUE_DEPTH,),
    "oldest_wait_s": (m.QUEUE_OLDEST_AGE,),
    "consumer_lag": (m.CONSUMER_LAG,),
    "dlq_records": (m.DLQ_RECORDS,),
    "agents_online": (m.AGENTS_ONLINE,),
    "referrals_open": (m.REFERRALS_OPEN,),
    "referrals_overdue": (m.REFERRALS_OVERDUE,),
    # Live help: routing counts the waiting chats; help counts and times them.
    "chats_waiting": (m.CHATS_WAITING,),
    "chats_opened": (m.HELP_CHATS_OPENED,),
    "chats_closed": (m.HELP_CHATS_CLOSED,),
    "first_answers": (m.HELP_CHAT_FIRST_ANSWER,),
    "first_answer_p50_s": (m.HELP_CHAT_FIRST_ANSWER,),
    "first_answer_p90_s": (m.HELP_CHAT_FIRST_ANSWER,),
    "resolution_p50_s": (m.HELP_CHAT_RESOLUTION,),
    "resolution_p90_s": (m.HELP_CHAT_RESOLUTION,),
}


# Every registry metric the page reads: the ones missing from all targets are named on the page.
SHOWN: tuple[Metric, ...] = tuple(
    dict.fromkeys(metric for sources in FIGURE_SOURCES.values() for metric in sources)
)


def parse(text: str) -> dict[str, list[Series]]:
    """A Prometheus text exposition, by series name. Raises ValueError when it is not one."""
    found: dict[str, list[Series]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), float(sample.value)))
    return dict(found)


@dataclass(frozen=True)
class TargetScrape:
    """One scrape of one service's ``/metrics``: what it exposed, or why it could not."""

    name: str
    url: str
    series: Exposition = field(default_factory=dict)
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.error is None


def _series(scrapes: Iterable[TargetScrape], metric: Metric, part: str = "") -> list[Series]:
    """Every series of ``metric`` on the targets that answered; ``part``: a histogram's
    ``_bucket``, ``_sum`` or ``_count``."""
    name = metric.prometheus_name + part
    return [s for scrape in scrapes if scrape.up for s in scrape.series.get(name, ())]


def _exposed(scrapes: Iterable[TargetScrape], metric: Metric) -> bool:
    """Whether a target that answered exposes ``metric`` (any of a histogram's series)."""
    return any(
        scrape.series.get(name)
        for scrape in scrapes
        if scrape.up
        for name in metric.prometheus_series
    )


def _key(labels: Mapping[str, str], attributes: Sequence[str]) -> tuple[str, ...]:
    return tuple(labels.get(prometheus_label(attribute), "") for attribute in attributes)


def grouped(
    scrapes: Iterable[TargetScrape],
    metric: Metric,
    attributes: Sequence[str] = (),
    *,
    combine: Literal["sum", "max"] | None = None,
) -> dict[tuple[str, ...], float]:
    """``metric`` over every target, grouped by ``attributes`` (registry attribute names).
    Instances are combined with ``sum`` for counters (what each process did) and ``max`` for
    gauges (snapshots of shared state, which every instance reports alike) unless told."""
    combine = combine or ("max" if metric.kind is Kind.GAUGE else "sum")
    totals: dict[tuple[str, ...], float] = {}
    for labels, value in _series(scrapes, metric):
        key = _key(labels, attributes)
        if key in totals:
            totals[key] = totals[key] + value if combine == "sum" else max(totals[key], value)
        else:
            totals[key] = value
    return totals


def total(scrapes: Iterable[TargetScrape], metric: Metric) -> float:
    """Every series of ``metric`` on every target, added up."""
    return sum(grouped(scrapes, metric, combine="sum").values())


def histograms(
    scrapes: Iterable[TargetScrape], metric: Metric, attributes: Sequence[str] = ()
) -> dict[tuple[str, ...], list[tuple[float, float]]]:
    """A histogram ``metric``'s buckets over every target, grouped by ``attributes``: summed per
    bound over instances and series (each process counts its own observations), by bound."""
    if metric.kind is not Kind.HISTOGRAM:
        raise TypeError(f"{metric.name} is a {metric.kind.value}, not a histogram")
    summed: dict[tuple[str, ...], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for labels, value in _series(scrapes, metric, "_bucket"):
        try:
            bound = float(labels["le"])
        except (KeyError, ValueError):
            continue  # not a bucket: nothing to place it by
        summed[_key(labels, attributes)][bound] += value
    return {key: sorted(by_bound.items()) for key, by_bound in summed.items()}


def quantile(buckets: Buckets, q: float) -> float | None:
    """The ``q``-quantile (0 to 1) of the observations a histogram counted, estimated from its
    cumulative ``buckets`` as Prometheus' ``histogram_quantile`` does: by linear interpolation
    within the bucket the rank falls in (the first bucket starting at 0), and the highest finite
    bound when it falls in the ``+Inf`` bucket. None when nothing can be estimated: no
    observations, no ``+Inf`` bucket, or no finite one. Counts that fall with a rising bound
    (instances scraped a moment apart) are read as the highest count below."""
    if not 0 <= q <= 1:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    ordered = sorted(buckets)
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return None
    bounds = [bound for bound, _ in ordered]
    counts = list(itertools.accumulate((count for _, count in ordered), max))
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    for i, (bound, count) in enumerate(zip(bounds, counts, strict=True)):
        below = counts[i - 1] if i else 0.0
        # The first bucket that reaches the rank and holds an observation (q = 0: the lowest).
        if count < rank or count <= below:
            continue
        if bound == math.inf:
            return bounds[-2]
        lower = bounds[i - 1] if i else min(0.0, bound)
        return lower + (bound - lower) * (rank - below) / (count - below)
    return None  # not reached: the last bucket holds every observation


def timing(buckets: Buckets) -> dict[str, float | None]:
    """How many observations a histogram counted, with its median and 90th percentile."""
    return {
        "count": max((count for _, count in buckets), default=0.0),
        "p50_s": quantile(buckets, 0.5),
        "p90_s": quantile(buckets, 0.9),
    }


def _rows(
    values: Mapping[tuple[str, ...], float], names: Sequence[str], value_name: str = "value"
) -> list[dict[str, Any]]:
    rows = [
        {**dict(zip(names, key, strict=True)), value_name: value} for key, value in values.items()
    ]
    return sorted(rows, key=lambda row: tuple(str(row[name]) for name in names))


def _final_decisions(scrapes: Sequence[TargetScrape]) -> dict[tuple[str, ...], float]:
    """Decisions that closed their case, by outcome and platform. A series without a status
    label (older exporters) counts as final."""
    by = ("outcome", "platform", "status")
    return {
        (outcome, platform): value
        for (outcome, platform, status), value in grouped(scrapes, m.DECISIONS, by).items()
        if status in {"", FINAL_DECISION}
    }


def _queues(scrapes: Sequence[TargetScrape]) -> list[dict[str, Any]]:
    figures: dict[str, dict[str, float]] = defaultdict(dict)
    for column, metric in (
        ("depth", m.QUEUE_DEPTH),
        ("oldest_wait_s", m.QUEUE_OLDEST_AGE),
        ("breached_now", m.QUEUE_BREACHED),
        ("routed", m.CASES_ROUTED),
        ("sla_warnings", m.SLA_WARNINGS),
        ("sla_breaches", m.SLA_BREACHES),
    ):
        for (queue,), value in grouped(scrapes, metric, ("queue",)).items():
            figures[queue][column] = value
    columns = ("depth", "oldest_wait_s", "breached_now", "routed", "sla_warnings", "sla_breaches")
    return [
        {"queue": queue, **{column: figures[queue].get(column, 0.0) for column in columns}}
        for queue in sorted(figures)
    ]


def _by_platform(
    scrapes: Sequence[TargetScrape], decided: Mapping[tuple[str, ...], float]
) -> list[dict[str, Any]]:
    figures: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (platform,), value in grouped(scrapes, m.APPEALS_RECEIVED, ("platform",)).items():
        figures[platform]["received"] += value
    for (platform,), value in grouped(scrapes, m.CASES_ROUTED, ("platform",)).items():
        figures[platform]["routed"] += value
    for (outcome, platform), value in decided.items():
        figures[platform]["decided"] += value
        if outcome in REVERSAL_OUTCOMES:
            figures[platform]["reversals"] += value
    columns = ("received", "routed", "decided", "reversals")
    return [
        {"platform": platform or "unknown", **{c: figures[platform][c] for c in columns}}
        for platform in sorted(figures)
    ]


def _notifications(scrapes: Sequence[TargetScrape]) -> list[dict[str, Any]]:
    delivered = grouped(scrapes, m.NOTIFICATIONS_DELIVERED, ("channel",))
    failed = grouped(scrapes, m.NOTIFICATIONS_FAILED, ("channel",))
    channels = sorted({key[0] for key in (*delivered, *failed)})
    return [
        {
            "channel": channel,
            "delivered": delivered.get((channel,), 0.0),
            "failed": failed.get((channel,), 0.0),
        }
        for channel in channels
    ]


def missing(scrapes: Sequence[TargetScrape]) -> list[str]:
    """Registry metrics the page reads that no reachable target exposes (yet)."""
    return [metric.name for metric in SHOWN if not _exposed(scrapes, metric)]


def no_data(absent: Iterable[str]) -> list[str]:
    """The headline figures none of whose metrics are exposed (``absent``: metric names)."""
    gone = set(absent)
    return [
        figure
        for figure, sources in FIGURE_SOURCES.items()
        if all(metric.name in gone for metric in sources)
    ]


def _live_help(scrapes: Sequence[TargetScrape]) -> dict[str, Any]:
    """Live help's chats: opened per topic, closed per resolution, and first-answer and
    resolution times (count, p50, p90; resolution per topic and over all)."""
    first_answer = histograms(scrapes, m.HELP_CHAT_FIRST_ANSWER).get((), [])
    by_topic = histograms(scrapes, m.HELP_CHAT_RESOLUTION, ("topic",))
    every_topic: dict[float, float] = defaultdict(float)
    for buckets in by_topic.values():
        for bound, count in buckets:
            every_topic[bound] += count
    return {
        "opened": _rows(grouped(scrapes, m.HELP_CHATS_OPENED, ("topic",)), ("topic",)),
        "closed": _rows(grouped(scrapes, m.HELP_CHATS_CLOSED, ("resolution",)), ("resolution",)),
        "first_answer": timing(first_answer),
        "resolution": timing(sorted(every_topic.items())),
        "resolution_by_topic": [
            {"topic": topic, **timing(by_topic[(topic,)])} for (topic,) in sorted(by_topic)
        ],
    }


def snapshot(scrapes: Sequence[TargetScrape]) -> dict[str, Any]:
    """Everything the page shows at one moment, as JSON-ready data."""
    decided = _final_decisions(scrapes)
    by_outcome: dict[tuple[str, ...], float] = defaultdict(float)
    for (outcome, _platform), value in decided.items():
        by_outcome[(outcome,)] += value
    queues = _queues(scrapes)
    lag = grouped(scrapes, m.CONSUMER_LAG, m.CONSUMER_LAG.attributes)
    dlq = grouped(scrapes, m.DLQ_RECORDS, m.DLQ_RECORDS.attributes)
    notifications = _notifications(scrapes)
    live_help = _live_help(scrapes)
    first_answer, resolution = live_help["first_answer"], live_help["resolution"]
    totals = {
        "received": total(scrapes, m.APPEALS_RECEIVED),
        "rejected": total(scrapes, m.APPEALS_REJECTED),
        "routed": total(scrapes, m.CASES_ROUTED),
        "decided": sum(decided.values()),
        "reversals": sum(v for (outcome, _), v in decided.items() if outcome in REVERSAL_OUTCOMES),
        "notified": sum(row["delivered"] for row in notifications),
        "notification_failures": sum(row["failed"] for row in notifications),
        "sla_warnings": total(scrapes, m.SLA_WARNINGS),
        "sla_breaches": total(scrapes, m.SLA_BREACHES),
        "breached_now": sum(row["breached_now"] for row in queues),
        "queue_depth": sum(row["depth"] for row in queues),
        "oldest_wait_s": max((row["oldest_wait_s"] for row in queues), default=0.0),
        "consumer_lag": sum(lag.values()),
        "dlq_records": sum(dlq.values()),
        # Each routing instance counts the desk streams open on it.
        "agents_online": total(scrapes, m.AGENTS_ONLINE),
        # Every routing instance counts the same live referrals (per body: the max, then summed).
        "referrals_open": sum(grouped(scrapes, m.REFERRALS_OPEN, ("body",)).values()),
        "referrals_overdue": sum(grouped(scrapes, m.REFERRALS_OVERDUE, ("body",)).values()),
        # Every routing instance reports the same live collection's count: the max.
        "chats_waiting": sum(grouped(scrapes, m.CHATS_WAITING).values()),
        "chats_opened": total(scrapes, m.HELP_CHATS_OPENED),
        "chats_closed": total(scrapes, m.HELP_CHATS_CLOSED),
        "first_answers": first_answer["count"],
        # No observations yet: 0 here (the figure reads "no data"; the ``live_help`` times None).
        "first_answer_p50_s": first_answer["p50_s"] or 0.0,
        "first_answer_p90_s": first_answer["p90_s"] or 0.0,
        "resolution_p50_s": resolution["p50_s"] or 0.0,
        "resolution_p90_s": resolution["p90_s"] or 0.0,
    }
    absent = missing(scrapes)
    return {
        "targets": [
            {"name": scrape.name, "url": scrape.url, "up": scrape.up, "error": scrape.error}
            for scrape in scrapes
        ],
        "missing": absent,
        "no_data": no_data(absent),
        "totals": totals,
        "platforms": _by_platform(scrapes, decided),
        "received": _rows(
            grouped(scrapes, m.APPEALS_RECEIVED, ("platform", "channel")), ("platform", "channel")
        ),
        "rejected": _rows(
            grouped(scrapes, m.APPEALS_REJECTED, ("reason", "channel")), ("reason", "channel")
        ),
        "decisions": _rows(by_outcome, ("outcome",)),
        "queues": queues,
        "notifications": notifications,
        "consumer_lag": _rows(lag, ("group", "topic", "partition"), "lag"),
        "dlq": _rows(dlq, ("topic",), "records"),
        "live_help": live_help,
    }
