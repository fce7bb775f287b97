"""OpenTelemetry set-up: traces and metrics, Prometheus exposition, OTLP export when configured."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_installed: Telemetry | None = None


def setup_telemetry(
    service_name: str, *, otlp_endpoint: str | None, otlp_metrics_endpoint: str | None = None
) -> Telemetry:
    """Install global tracer and meter providers once per process.

    Traces go to ``otlp_endpoint`` when set; metrics are always exposed for Prometheus and also
    pushed to ``otlp_metrics_endpoint`` when set.
    """
    global _installed  # noqa: PLW0603 - OpenTelemetry's providers are process-global by design
    if _installed is not None:
        return _installed
    resource = Resource.create({"service.name": service_name, "service.namespace": "appeals"})
    tracer_provider = TracerProvider(resource=resource)
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
