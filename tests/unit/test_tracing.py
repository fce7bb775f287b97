"""Spans the runtime creates: HTTP server spans, and work carried into an appeal's trace."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from appeals_runtime import tracing
from appeals_runtime.http import TELEMETRY
from appeals_runtime.telemetry import prometheus_exposition, setup_telemetry

tracer = trace.get_tracer(__name__)


_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Finished spans of this test (one exporter for the session: processors cannot be removed)."""
    telemetry = setup_telemetry("tracing-tests", otlp_endpoint=None)
    if not getattr(telemetry, "_test_exporter_added", False):
        telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(_exporter))
        telemetry._test_exporter_added = True  # type: ignore[attr-defined]
    _exporter.clear()
    return _exporter


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def test_a_human_action_is_recorded_in_the_appeals_trace_and_linked_to_its_own(
    spans: InMemorySpanExporter,
) -> None:
    with tracer.start_as_current_span("submitted"):
        stored = tracing.current_traceparent()
    with (
        tracer.start_as_current_span("agent decides"),
        tracing.appeal_span("case decided", stored, appeal_id="ap_1", queue="q"),
    ):
        pass

    appeal_root = named(spans, "submitted")
    agent = named(spans, "agent decides")
    decided = named(spans, "case decided")
    assert decided.context.trace_id == appeal_root.context.trace_id
    assert decided.parent is not None and decided.parent.span_id == appeal_root.context.span_id
    assert [link.context.span_id for link in decided.links] == [agent.context.span_id]
    assert decided.attributes == {tracing.APPEAL_ID: "ap_1", tracing.QUEUE: "q"}


def test_work_already_in_the_appeals_trace_is_an_ordinary_child(
    spans: InMemorySpanExporter,
) -> None:
    with tracer.start_as_current_span("process"):
        stored = tracing.current_traceparent()
        with tracing.appeal_span("case routed", stored, appeal_id="ap_2"):
            pass

    process, routed = named(spans, "process"), named(spans, "case routed")
    assert routed.parent is not None and routed.parent.span_id == process.context.span_id
    assert not routed.links


def test_without_a_stored_trace_the_work_continues_the_current_one(
    spans: InMemorySpanExporter,
) -> None:
    assert tracing.context_of("") is None
    assert tracing.context_of("00-not-a-traceparent") is None
    with (
        tracer.start_as_current_span("sweep"),
        tracing.appeal_span("case sla_warned", "", appeal_id="ap_3"),
    ):
        pass
    sweep, warned = named(spans, "sweep"), named(spans, "case sla_warned")
    assert warned.parent is not None and warned.parent.span_id == sweep.context.span_id


async def test_http_requests_get_a_server_span_and_a_duration_with_the_route_template(
    spans: InMemorySpanExporter,
) -> None:
    app = FastAPI(telemetry=TELEMETRY)

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    caller_trace = "0af7651916cd43dd8448eb211c80319c"
    traceparent = f"00-{caller_trace}-b7ad6b7169203331-01"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.get("/v1/things/ap_secret", headers={"traceparent": traceparent})
        await client.get("/metrics")  # probes: no span
    assert response.status_code == 200

    (server,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.name == "GET /v1/things/{thing_id}"
    assert format(server.context.trace_id, "032x") == caller_trace
    assert server.parent is not None and format(server.parent.span_id, "016x") == "b7ad6b7169203331"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/things/{thing_id}"
    assert server.attributes["http.response.status_code"] == 200
    exposition = prometheus_exposition()[0].decode()
    assert 'http_route="/v1/things/{thing_id}"' in exposition
    assert "ap_secret" not in exposition  # raw paths never become labels
