"""Every metric the pipeline exports, declared once.

Services create their instruments from these declarations (``counter(APPEALS_RECEIVED)``), and
everything that reads metrics by name — Prometheus rules, Grafana dashboards, the ops page, the
tests — refers to the same declarations, so a renamed metric cannot silently break a dashboard
(``tests/unit/test_metric_registry.py`` checks the files under ``deploy/`` against this list).

Names: the pipeline's own metrics start with ``appeals.``; where OpenTelemetry's semantic
conventions define a metric (HTTP server duration, RPC server duration, messaging process
duration, database client duration) we use its name and attributes so standard dashboards work.
Prometheus sees dots as underscores, the unit as a suffix and ``_total`` on counters:
:attr:`Metric.prometheus_name` gives the name to query.

Attributes never carry personal data or unbounded values (no appeal ids, no user ids): an
appeal is followed through its trace, not through metric labels.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from opentelemetry import metrics as otel
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation

_meter = otel.get_meter("appeals")


class Kind(enum.Enum):
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


# Seconds-valued histograms: from a fast store read to a multi-day review.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
)  # fmt: skip
DECISION_BUCKETS_S: tuple[float, ...] = (
    60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400,
)  # fmt: skip

# Prometheus unit suffixes the OpenTelemetry exporter appends (curly-brace units add none).
_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    @property
    def prometheus_name(self) -> str:
        """The name Prometheus stores it under (the exporter's translation of OTel names)."""
        base = self.name.replace(".", "_")
        suffix = _UNIT_SUFFIX.get(self.unit)
        if suffix and not base.endswith(f"_{suffix}"):
            base = f"{base}_{suffix}"
        if self.kind is Kind.COUNTER:
            base = f"{base}_total"
        return base

    @property
    def prometheus_series(self) -> tuple[str, ...]:
        """Every series name this metric produces in Prometheus (histograms produce three)."""
        if self.kind is Kind.HISTOGRAM:
            return tuple(f"{self.prometheus_name}_{part}" for part in ("bucket", "sum", "count"))
        return (self.prometheus_name,)


def prometheus_label(attribute: str) -> str:
    """The Prometheus label an OpenTelemetry attribute becomes (``a.b`` → ``a_b``)."""
    return attribute.replace(".", "_")


REGISTRY: dict[str, Metric] = {}


def _declare(
    name: str,
    kind: Kind,
    unit: str,
    description: str,
    attributes: Sequence[str] = (),
    buckets: Sequence[float] | None = None,
) -> Metric:
    if name in REGISTRY:
        raise ValueError(f"metric {name} declared twice")
    metric = Metric(
        name, kind, unit, description, tuple(attributes), tuple(buckets) if buckets else None
    )
    REGISTRY[name] = metric
    return metric


# --- Intake -------------------------------------------------------------------------------------
APPEALS_RECEIVED = _declare(
    "appeals.intake.received", Kind.COUNTER, "{appeal}",
    "Appeals accepted and acknowledged by the broker (replays of an idempotent request excluded)",
    ("platform", "channel"),
)  # fmt: skip
APPEALS_REJECTED = _declare(
    "appeals.intake.rejected", Kind.COUNTER, "{request}",
    "Submissions refused, by reason (invalid, ineligible, duplicate, rate_limited, forbidden, "
    "unavailable, ...) and channel",
    ("reason", "channel"),
)  # fmt: skip
BAN_EVASION_FLAGGED = _declare(
    "appeals.intake.ban_evasion.flagged", Kind.COUNTER, "{appeal}",
    "Accepted appeals flagged for routing because the appellant is linked to evasion removals",
    ("platform",),
)  # fmt: skip

# --- Routing ------------------------------------------------------------------------------------
CASES_ROUTED = _declare(
    "appeals.routing.routed", Kind.COUNTER, "{case}",
    "Appeals placed in a review queue, by queue, platform and matching rule",
    ("queue", "platform", "rule"),
)  # fmt: skip
QUEUE_DEPTH = _declare(
    "appeals.routing.queue.depth", Kind.GAUGE, "{case}",
    "Cases waiting for a reviewer (a store snapshot: aggregate instances with max, not sum)",
    ("queue",),
)  # fmt: skip
QUEUE_OLDEST_AGE = _declare(
    "appeals.routing.queue.oldest_age", Kind.GAUGE, "s",
    "How long the longest-waiting case of the queue has waited",
    ("queue",),
)  # fmt: skip
QUEUE_BREACHED = _declare(
    "appeals.routing.queue.breached", Kind.GAUGE, "{case}",
    "Open cases past their SLA due time",
    ("queue",),
)  # fmt: skip
INFO_REQUESTS = _declare(
    "appeals.routing.info_requests", Kind.COUNTER, "{request}",
    "Requests for more information sent to appellants",
    ("queue", "platform"),
)  # fmt: skip
REFERRALS_OPEN = _declare(
    "appeals.routing.referrals.open", Kind.GAUGE, "{case}",
    "Cases out with an external body (Oversight Board, out-of-court body) awaiting its decision",
    ("body",),
)  # fmt: skip
REFERRALS_OVERDUE = _declare(
    "appeals.routing.referrals.overdue", Kind.GAUGE, "{case}",
    "Referrals whose decision is past its respond-by date",
    ("body",),
)  # fmt: skip
AGENTS_ONLINE = _declare(
    "appeals.routing.agents.online", Kind.GAUGE, "{agent}", "Agents with a desk stream open"
)
SLA_WARNINGS = _declare(
    "appeals.routing.sla.warnings", Kind.COUNTER, "{case}",
    "Cases that neared their due time undecided (each counted once)",
    ("queue", "platform"),
)  # fmt: skip
SLA_BREACHES = _declare(
    "appeals.routing.sla.breaches", Kind.COUNTER, "{case}",
    "Cases that passed their due time undecided (each counted once)",
    ("queue", "platform"),
)  # fmt: skip
DECISIONS = _declare(
    "appeals.routing.decisions", Kind.COUNTER, "{decision}",
    "Reviews recorded, by outcome (upheld, overturned, partially_overturned), queue and platform; "
    "status says whether the review closed the case or awaits a second reviewer",
    ("outcome", "queue", "platform", "status"),
)  # fmt: skip
TIME_TO_DECISION = _declare(
    "appeals.routing.decision.duration", Kind.HISTOGRAM, "s",
    "From the appeal's receipt to the decision that closed it",
    ("queue", "platform", "outcome"),
    DECISION_BUCKETS_S,
)  # fmt: skip
ESCALATIONS = _declare(
    "appeals.routing.escalations", Kind.COUNTER, "{case}",
    "Cases escalated, by target tier",
    ("tier",),
)  # fmt: skip
OFFERS = _declare(
    "appeals.routing.offers", Kind.COUNTER, "{offer}", "Cases offered (reserved) to an agent",
    ("queue",),
)  # fmt: skip
LEASES_EXPIRED = _declare(
    "appeals.routing.leases.expired", Kind.COUNTER, "{claim}", "Claims whose lease ran out",
    ("queue",),
)  # fmt: skip
POLICY_RELOADS = _declare(
    "appeals.routing.policy.reloads", Kind.COUNTER, "{reload}",
    "Routing policy file re-reads, by outcome (applied, rejected)",
    ("outcome",),
)  # fmt: skip

# --- Notifications ------------------------------------------------------------------------------
NOTIFICATIONS_DELIVERED = _declare(
    "appeals.notifications.delivered", Kind.COUNTER, "{notification}",
    "Notifications delivered to appellants, first deliveries only, by channel and kind",
    ("channel", "kind"),
)  # fmt: skip
NOTIFICATIONS_FAILED = _declare(
    "appeals.notifications.failed", Kind.COUNTER, "{attempt}",
    "Failed delivery attempts, by channel, kind and whether retrying can help (permanent)",
    ("channel", "kind", "permanent"),
)  # fmt: skip
NOTIFICATIONS_DEAD_LETTERED = _declare(
    "appeals.notifications.dead_lettered", Kind.COUNTER, "{attempt}",
    "Attempts that failed for good and went to the notifications DLQ",
    ("channel", "kind"),
)  # fmt: skip
NOTIFICATIONS_UNDELIVERABLE = _declare(
    "appeals.notifications.undeliverable", Kind.COUNTER, "{notification}",
    "Notifications no configured channel could deliver",
    ("kind",),
)  # fmt: skip
NOTIFICATIONS_DEFERRED = _declare(
    "appeals.notifications.deferred", Kind.COUNTER, "{notification}",
    "Non-urgent notifications held back by quiet hours or the daily limit",
    ("kind", "reason"),
)  # fmt: skip
NOTIFICATIONS_SUPERSEDED = _declare(
    "appeals.notifications.superseded", Kind.COUNTER, "{notification}",
    "Waiting progress notifications dropped because the decision already arrived",
    ("kind",),
)  # fmt: skip
NOTIFICATIONS_FORGOTTEN = _declare(
    "appeals.notifications.forgotten", Kind.COUNTER, "{notification}",
    "Notices not sent because the appellant had asked intake to forget them",
    ("kind",),
)  # fmt: skip
NOTIFICATION_RETRIES_WAITING = _declare(
    "appeals.notifications.retry.waiting", Kind.GAUGE, "{notification}",
    "Retries held in memory by this process until they are due",
)  # fmt: skip
NOTIFICATION_RETRY_BACKLOG = _declare(
    "appeals.notifications.retry.backlog", Kind.GAUGE, "{notification}",
    "Retry-topic records of this process's partitions not yet finished",
)  # fmt: skip

# --- Audit --------------------------------------------------------------------------------------
AUDIT_APPENDED = _declare(
    "appeals.audit.appended", Kind.COUNTER, "{entry}",
    "Events appended to the audit log, by event type",
    ("event_type",),
)  # fmt: skip
AUDIT_CHECKPOINTS = _declare(
    "appeals.audit.checkpoints", Kind.COUNTER, "{checkpoint}",
    "Checkpoints signed, and refusals to sign (outcome)",
    ("outcome",),
)  # fmt: skip

# --- Kafka, every service -----------------------------------------------------------------------
CONSUMER_MESSAGES = _declare(
    "appeals.kafka.consumer.messages", Kind.COUNTER, "{message}",
    "Messages a consumer finished, by outcome (handled, dead_lettered)",
    ("messaging.consumer.group.name", "messaging.destination.name", "outcome"),
)  # fmt: skip
CONSUMER_RETRIES = _declare(
    "appeals.kafka.consumer.retries", Kind.COUNTER, "{attempt}",
    "Handler attempts that failed and were retried",
    ("messaging.consumer.group.name", "messaging.destination.name"),
)  # fmt: skip
CONSUMER_LAG = _declare(
    "appeals.kafka.consumer.lag", Kind.GAUGE, "{message}",
    "Records on the broker that this group has not yet handled, per assigned partition",
    ("messaging.consumer.group.name", "messaging.destination.name",
     "messaging.destination.partition.id"),
)  # fmt: skip
DLQ_RECORDS = _declare(
    "appeals.kafka.dlq.records", Kind.GAUGE, "{message}",
    "Records parked in a dead-letter topic (end minus start offsets)",
    ("messaging.destination.name",),
)  # fmt: skip
DLQ_PUBLISHED = _declare(
    "appeals.kafka.dlq.published", Kind.COUNTER, "{message}",
    "Records this process parked in a dead-letter topic",
    ("messaging.destination.name",),
)  # fmt: skip

# --- OpenTelemetry semantic-convention metrics ----------------------------------------------------
# Recorded by FastAPI's built-in telemetry (appeals_runtime.http.TELEMETRY); declared here so
# rules and dashboards can name it like any other.
HTTP_SERVER_DURATION = _declare(
    "http.server.request.duration", Kind.HISTOGRAM, "s", "Duration of HTTP server requests",
    ("http.request.method", "http.route", "http.response.status_code", "error.type"),
    LATENCY_BUCKETS_S,
)  # fmt: skip
RPC_SERVER_DURATION = _declare(
    "rpc.server.call.duration", Kind.HISTOGRAM, "s", "Duration of RPCs served",
    ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code"),
    LATENCY_BUCKETS_S,
)  # fmt: skip
MESSAGING_PROCESS_DURATION = _declare(
    "messaging.process.duration", Kind.HISTOGRAM, "s",
    "Duration of processing one consumed message, retries included",
    ("messaging.system", "messaging.destination.name", "messaging.consumer.group.name",
     "error.type"),
    LATENCY_BUCKETS_S,
)  # fmt: skip
MESSAGING_SEND_DURATION = _declare(
    "messaging.client.operation.duration", Kind.HISTOGRAM, "s",
    "Duration of publishing one message until the broker acknowledged it",
    ("messaging.system", "messaging.operation.name", "messaging.destination.name", "error.type"),
    LATENCY_BUCKETS_S,
)  # fmt: skip
DB_CLIENT_DURATION = _declare(
    "db.client.operation.duration", Kind.HISTOGRAM, "s", "Duration of database operations",
    ("db.system.name", "db.operation.name", "db.collection.name", "error.type"),
    LATENCY_BUCKETS_S,
)  # fmt: skip


def _check(metric: Metric, kind: Kind) -> None:
    if metric.kind is not kind:
        raise TypeError(f"{metric.name} is a {metric.kind.value}, not a {kind.value}")


def counter(metric: Metric) -> Counter:
    _check(metric, Kind.COUNTER)
    return _meter.create_counter(metric.name, unit=metric.unit, description=metric.description)


def histogram(metric: Metric) -> Histogram:
    _check(metric, Kind.HISTOGRAM)
    return _meter.create_histogram(
        metric.name,
        unit=metric.unit,
        description=metric.description,
        explicit_bucket_boundaries_advisory=list(metric.buckets) if metric.buckets else None,
    )


Observe = Callable[[], Iterable[tuple[float, dict[str, str]]]]


def gauge(metric: Metric, observe: Observe) -> None:
    """Register an observable gauge; ``observe`` returns (value, attributes) pairs at scrape time.

    A failing callback reports nothing for that scrape rather than breaking the whole exposition.
    """
    _check(metric, Kind.GAUGE)

    def callback(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, attributes) for value, attributes in observe()]

    _meter.create_observable_gauge(
        metric.name, [callback], unit=metric.unit, description=metric.description
    )
