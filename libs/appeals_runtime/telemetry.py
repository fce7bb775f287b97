"""OpenTelemetry set-up: traces and metrics, Prometheus exposition, OTLP export when configured."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

# How many new traces a process may start per second when it exports them, and the burst it may
# start at once: every appeal is traced while traffic is light (a demo, a test, an incident
# replay), and under load recording and exporting spans stays a fixed cost instead of growing with
# the appeal rate (at 50 appeals/s it was a tenth of every service's CPU).
DEFAULT_TRACES_PER_S = 10.0
BURST_SECONDS = 5.0


class RateLimitedSampler(Sampler):
    """Samples at most ``per_second`` new traces per second, in bursts of up to ``burst``.

    A token bucket, so a quiet process samples everything. Used as the root sampler behind
    :class:`ParentBased`: a trace begun elsewhere (a surface's ``traceparent``, a Kafka record's
    headers, an appeal's stored context) keeps the decision made where it began, so a sampled
    appeal is whole across every service and an unsampled one costs nothing anywhere.
    """

    def __init__(self, per_second: float, *, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if per_second < 0:
            raise ValueError("per_second must not be negative")
        self._per_second = per_second
        self._burst = burst if burst is not None else max(1.0, per_second * BURST_SECONDS)
        self._clock = clock
        self._tokens = self._burst
        self._last = clock()
        self._lock = threading.Lock()  # spans also start on exporter and gRPC threads

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if self._take():
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
        return SamplingResult(Decision.DROP, None, trace_state)

    def _take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._per_second)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def get_description(self) -> str:
        return f"RateLimitedSampler{{{self._per_second}/s, burst {self._burst}}}"


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_installed: Telemetry | None = None


def setup_telemetry(
    service_name: str,
    *,
    otlp_endpoint: str | None,
    otlp_metrics_endpoint: str | None = None,
    traces_per_s: float = DEFAULT_TRACES_PER_S,
) -> Telemetry:
    """Install global tracer and meter providers once per process.

    Traces go to ``otlp_endpoint`` when set, at most ``traces_per_s`` new ones per second (see
    :class:`RateLimitedSampler`); without an endpoint every span is recorded for whatever
    processor a caller adds (tests). Metrics are always exposed for Prometheus and also pushed to
    ``otlp_metrics_endpoint`` when set.
    """
    global _installed  # noqa: PLW0603 - OpenTelemetry's providers are process-global by design
    if _installed is not None:
        return _installed
    resource = Resource.create({"service.name": service_name, "service.namespace": "appeals"})
    sampler = ParentBased(RateLimitedSampler(traces_per_s)) if otlp_endpoint else None
    tracer_provider = TracerProvider(resource=resource, sampler=sampler)
    readers: list[MetricReader] = [PrometheusMetricReader()]
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint))
        )
    if otlp_metrics_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        readers.append(
            PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=otlp_metrics_endpoint))
        )
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _installed = Telemetry(tracer_provider, meter_provider)
    return _installed


def prometheus_exposition() -> tuple[bytes, str]:
    """The process's metrics in Prometheus text format, with its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
