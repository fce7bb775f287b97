"""How the pipeline declares its metrics, and the runtime's own (Kafka, HTTP, gRPC, store).

Every metric is declared once with :func:`declare`: the runtime's here, each service's business
metrics in that service's ``metrics`` module (``services.routing.metrics.CASES_ROUTED``), so a new
routing counter is a change to routing only. Services create their instruments from the
declarations (``counter(CASES_ROUTED)``), and everything that reads metrics by name — Prometheus
rules, Grafana dashboards, the ops page, the tests — is checked against them, so a renamed metric
cannot silently break a dashboard (``tests/unit/test_metric_registry.py`` checks the files under
``deploy/``; ``tests/unit/test_ops_figures.py`` checks the ops page's copy of what it reads).

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


def declare(
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


# --- Kafka, every service -----------------------------------------------------------------------
CONSUMER_MESSAGES = declare(
    "appeals.kafka.consumer.messages", Kind.COUNTER, "{message}",
    "Messages a consumer finished, by outcome (handled, dead_lettered, skipped: ignored)",
    ("messaging.consumer.group.name", "messaging.destination.name", "outcome"),
)  # fmt: skip
CONSUMER_RETRIES = declare(
    "appeals.kafka.consumer.retries", Kind.COUNTER, "{attempt}",
    "Handler attempts that failed and were retried",
    ("messaging.consumer.group.name", "messaging.destination.name"),
)  # fmt: skip
CONSUMER_LAG = declare(
    "appeals.kafka.consumer.lag", Kind.GAUGE, "{message}",
    "Records on the broker that this group has not yet handled, per assigned partition",
    ("messaging.consumer.group.name", "messaging.destination.name",
     "messaging.destination.partition.id"),
)  # fmt: skip
DLQ_RECORDS = declare(
    "appeals.kafka.dlq.records", Kind.GAUGE, "{message}",
    "Records parked in a dead-letter topic (end minus start offsets)",
    ("messaging.destination.name",),
)  # fmt: skip
DLQ_PUBLISHED = declare(
    "appeals.kafka.dlq.published", Kind.COUNTER, "{message}",
    "Records this process parked in a dead-letter topic",
    ("messaging.destination.name",),
)  # fmt: skip

REQUESTS_REFUSED = declare(
    "appeals.requests.refused", Kind.COUNTER, "{request}",
    "Requests refused at once (503, UNAVAILABLE) because the service had its limit in hand",
    ("channel",),
)  # fmt: skip

# --- OpenTelemetry semantic-convention metrics ----------------------------------------------------
# Recorded by FastAPI's built-in telemetry (appeals_runtime.http.TELEMETRY); declared here so
# rules and dashboards can name it like any other.
HTTP_SERVER_DURATION = declare(
    "http.server.request.duration", Kind.HISTOGRAM, "s", "Duration of HTTP server requests",
    ("http.request.method", "http.route", "http.response.status_code", "error.type"),
    LATENCY_BUCKETS_S,
)  # fmt: skip
RPC_SERVER_DURATION = declare(
    "rpc.server.call.duration", Kind.HISTOGRAM, "s", "Duration of RPCs served",
    ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code"),
    LATENCY_BUCKETS_S,
)  # fmt: skip
MESSAGING_PROCESS_DURATION = declare(
    "messaging.process.duration", Kind.HISTOGRAM, "s",
    "Duration of processing one consumed message, retries included",
    ("messaging.system", "messaging.destination.name", "messaging.consumer.group.name",
     "error.type"),
    LATENCY_BUCKETS_S,
)  # fmt: skip
MESSAGING_SEND_DURATION = declare(
    "messaging.client.operation.duration", Kind.HISTOGRAM, "s",
    "Duration of publishing one message until the broker acknowledged it",
    ("messaging.system", "messaging.operation.name", "messaging.destination.name", "error.type"),
    LATENCY_BUCKETS_S,
)  # fmt: skip
DB_CLIENT_DURATION = declare(
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
