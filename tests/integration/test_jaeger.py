"""The local trace backend for real: spans sent over OTLP/gRPC the way the services send them
(``OTEL_EXPORTER_OTLP_ENDPOINT`` with an http:// scheme, so no TLS) come back through Jaeger's
query API with their services, parents and links, which is what the end-to-end trace tests read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from appeals_devstack.jaeger import Jaeger, JaegerPorts, JaegerQuery, trace_id_hex

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    server = Jaeger(tmp_path_factory.mktemp("jaeger"), JaegerPorts.free())
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def provider(service: str, endpoint: str) -> TracerProvider:
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": service}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return tracer_provider


def test_spans_sent_over_otlp_come_back_with_parents_and_links(jaeger: Jaeger) -> None:
    producer = provider("test-producer", jaeger.otlp_endpoint)
    consumer = provider("test-consumer", jaeger.otlp_endpoint)
    try:
        publisher = producer.get_tracer("test")
        with publisher.start_as_current_span("batch") as batch:
            pass
        with (
            publisher.start_as_current_span("POST /v1/appeals") as root,
            publisher.start_as_current_span(
                "send appeals.lifecycle.v1", kind=trace.SpanKind.PRODUCER
            ) as send,
        ):
            send.set_attribute("messaging.destination.name", "appeals.lifecycle.v1")
        # The consumer continues the trace from the message, and links the batch it came with.
        with consumer.get_tracer("test").start_as_current_span(
            "process appeals.lifecycle.v1",
            context=trace.set_span_in_context(send),
            kind=trace.SpanKind.CONSUMER,
            links=[trace.Link(batch.get_span_context())],
        ):
            pass
    finally:
        producer.shutdown()
        consumer.shutdown()

    query = jaeger.query()
    found = query.wait_for_trace(root.get_span_context().trace_id, min_spans=3)
    assert found.trace_id == trace_id_hex(root.get_span_context().trace_id)
    assert found.services() == {"test-producer", "test-consumer"}
    sent, handled = (
        found.span("send appeals.lifecycle.v1"),
        found.span("process appeals.lifecycle.v1"),
    )
    assert found.parent(sent) == found.span("POST /v1/appeals")
    assert found.parent(handled) == sent
    assert handled.service == "test-consumer"
    assert handled.follows_from == (f"{batch.get_span_context().span_id:016x}",)
    assert sent.tags["messaging.destination.name"] == "appeals.lifecycle.v1"
    assert found.service_edges() == {("test-producer", "test-consumer")}
    assert {"test-producer", "test-consumer"} <= set(query.services())
    assert [t.trace_id for t in query.find("test-consumer")] == [found.trace_id]


def test_an_unknown_trace_is_none(jaeger: Jaeger) -> None:
    assert jaeger.query().trace("0" * 31 + "1") is None


def test_metrics_pushed_over_otlp_are_accepted(jaeger: Jaeger) -> None:
    """The services push metrics to the same endpoint; Jaeger takes and drops them, no error."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(
        resource=Resource.create({"service.name": "test"}), metric_readers=[reader]
    )
    meter_provider.get_meter("test").create_counter("test.counter").add(1)
    data = reader.get_metrics_data()
    meter_provider.shutdown()
    assert data is not None
    exporter = OTLPMetricExporter(endpoint=jaeger.otlp_endpoint)
    try:
        assert exporter.export(data, timeout_millis=5000) is MetricExportResult.SUCCESS
    finally:
        exporter.shutdown()


def test_jaeger_exposes_its_own_metrics(jaeger: Jaeger) -> None:
    response = httpx.get(f"http://{jaeger.metrics_target}/metrics", timeout=5)
    assert response.status_code == 200 and "otelcol_" in response.text


def test_the_query_api_answers_what_the_ui_asks(jaeger: Jaeger) -> None:
    assert JaegerQuery(jaeger.query_url).answers()
    assert not JaegerQuery("http://127.0.0.1:9").answers()


def test_a_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="make jaeger"):
        Jaeger(tmp_path, JaegerPorts.free(), binary=tmp_path / "absent").start()
