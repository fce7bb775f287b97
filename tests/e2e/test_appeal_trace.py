"""One trace per appeal, read back from Jaeger's query API after a full lifecycle.

The surface starts the trace (its ``traceparent`` on the REST call); intake, every Kafka hop,
routing, notifications and audit continue it. The reviewer's claim and decision arrive on the
agent's own RPC traces: routing records them in the appeal's trace, linked (FOLLOWS_FROM) to the
RPC that triggered them, so the decision's events and everything downstream stay in one trace.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable

import grpc
import httpx
import pytest
from opentelemetry import propagate
from opentelemetry import trace as otel_trace

from appeals import topics
from appeals.v1 import appeal_pb2, intake_pb2, intake_pb2_grpc
from appeals_devstack.jaeger import JaegerQuery, Span, Trace
from appeals_runtime.kafka.producer import EventProducer
from services.intake import consumer as intake_consumer
from services.notifications import inbound as notifications_inbound
from services.routing import consumer as routing_consumer
from tests.e2e.conftest import Pipeline
from tests.support.bodies import appeal_body, submission_proto
from tests.support.pipeline import review
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

LIFECYCLE = "appeals.lifecycle.v1"
SERVICES = {"intake", "routing", "notifications", "audit"}
# Every service consumes the lifecycle topic (intake keeps its status view from it), and so does
# live help (it forgets a chat's person when intake erases the appeal's particulars).
LIFECYCLE_READERS = SERVICES | {"help"}
# The kinds each service's consumer skips without a span: what it ignores on purpose (routing
# reads the case changes it ignores all the same: its case feed follows them).
SKIPPING = {
    "intake": intake_consumer.EVENTS.ignored,
    "routing": routing_consumer.NOT_CASE_CHANGES,
    "notifications": notifications_inbound.EVENTS.ignored,
}


def kind(span: Span) -> str:
    return str(span.tags.get("span.kind", ""))


def destination(span: Span) -> str:
    return str(span.tags.get("messaging.destination.name", ""))


async def test_an_appeal_is_one_trace_across_all_four_services_and_every_kafka_hop(
    pipeline: Pipeline, jaeger: JaegerQuery
) -> None:
    trace_id = secrets.token_hex(16)
    surface_span = secrets.token_hex(8)
    body = appeal_body("instagram")
    async with httpx.AsyncClient(timeout=20) as client:
        response = await client.post(
            f"{pipeline.url('intake')}/v1/appeals",
            json=body,
            headers={
                "Authorization": f"Bearer {pipeline.surface_token('instagram')}",
                "Idempotency-Key": uuid.uuid4().hex,
                "traceparent": f"00-{trace_id}-{surface_span}-01",
            },
        )
        assert response.status_code == 202, response.text
        appeal_id = response.json()["appeal_id"]
        await review(pipeline, {appeal_id: appeal_pb2.OUTCOME_OVERTURNED})

    def complete() -> Trace | None:
        """The trace once every service reported and the decision reached notifications and
        audit (exporters batch: spans arrive over a few seconds)."""
        found = jaeger.trace(trace_id)
        if found is None or found.services() < SERVICES:
            return None
        after_decision = {
            s.service
            for s in found.spans
            if kind(s) == "consumer" and _carries(found, s, "case decided")
        }
        unread = [p for p in _lifecycle_sends(found) if _readers(found, p) < _reading(p)]
        return found if {"notifications", "audit"} <= after_decision and not unread else None

    trace = await eventually(lambda: asyncio.to_thread(complete), "the appeal's trace", 90)

    # The surface's span is the root: intake's server span is its child.
    (server,) = [s for s in trace.spans if s.operation == "POST /v1/appeals"]
    assert server.service == "intake" and server.child_of == (surface_span,)
    assert server.tags["http.route"] == "/v1/appeals"
    assert server.tags.get("appeals.appeal.id") == appeal_id

    # Every Kafka hop: each consumer span's parent is a producer span of the same topic, and
    # every lifecycle event sent in this trace was processed by every service that does not
    # ignore its kind (audit and live help read them all).
    producers = [s for s in trace.spans if kind(s) == "producer"]
    consumers = [s for s in trace.spans if kind(s) == "consumer"]
    assert producers and consumers
    for consumer in consumers:
        parent = trace.parent(consumer)
        assert parent is not None, f"{consumer.operation} in {consumer.service} has no parent"
        assert kind(parent) == "producer", (consumer.operation, parent.operation)
        assert destination(parent) == destination(consumer)
        assert consumer.operation == f"process {destination(consumer)}"
        assert consumer.tags.get("messaging.system") == "kafka"
    sends = _lifecycle_sends(trace)
    assert {p.service for p in sends} == SERVICES - {"audit"}  # audit only reads
    for producer in sends:
        assert _readers(trace, producer) == _reading(producer), producer.tags
    assert any(_reading(p) < LIFECYCLE_READERS for p in sends)  # some were skipped

    # The first hop: intake's send span inside its server span; routing consumes it.
    sent = [p for p in producers if p.service == "intake" and destination(p) == LIFECYCLE]
    assert sent and all(_has_ancestor(trace, p, server) for p in sent)

    # The human action: the decision is recorded in this trace, parented on the appeal's routing
    # work and linked to the reviewer's RPC in the reviewer's own trace.
    decided = trace.span("case decided")
    assert decided.service == "routing"
    assert decided.tags.get("appeals.appeal.id") == appeal_id
    assert decided.follows_from, "the decision is not linked to the reviewer's RPC"
    assert not any(s.span_id in decided.follows_from for s in trace.spans)  # another trace
    assert _has_ancestor(trace, decided, server)
    claimed = trace.span("case claimed")
    assert claimed.follows_from and _has_ancestor(trace, claimed, server)
    reviewer_rpc = _linked_trace(jaeger, decided)
    assert reviewer_rpc is not None
    assert {s.operation for s in reviewer_rpc.spans} & {"appeals.v1.AgentDesk/Decide"}

    # Notifications reads the recipient from intake over gRPC: a client span in its processing,
    # intake's server span its child.
    reads = [
        s
        for s in trace.spans
        if s.operation == "appeals.v1.Intake/GetAppealParticulars" and kind(s) == "server"
    ]
    assert reads
    for read in reads:
        caller = trace.parent(read)
        assert read.service == "intake" and caller is not None, read
        assert caller.service == "notifications" and kind(caller) == "client"

    # Store calls are client spans of their service's work; no span carries personal data.
    assert any(s.tags.get("db.system.name") == "mongodb" for s in trace.spans)
    statement = body["statement"]
    user_id = body["appellant"]["user_id"]
    for span in trace.spans:
        for value in span.tags.values():
            assert statement not in str(value) and user_id not in str(value), span.operation


async def test_grpc_calls_and_kafka_request_events_start_the_appeals_trace_too(
    pipeline: Pipeline, jaeger: JaegerQuery, producer: EventProducer
) -> None:
    """The surface's trace continues whichever way it submits: gRPC metadata or record headers."""
    grpc_trace, grpc_parent = secrets.token_hex(16), secrets.token_hex(8)
    async with grpc.aio.insecure_channel(pipeline.intake_grpc) as channel:
        answer = await intake_pb2_grpc.IntakeStub(channel).SubmitAppeal(
            intake_pb2.SubmitAppealRequest(
                idempotency_key=uuid.uuid4().hex,
                submission=submission_proto(appeal_body("horizon", kind="avatar")),
            ),
            metadata=(
                ("authorization", f"Bearer {pipeline.surface_token('horizon')}"),
                ("traceparent", f"00-{grpc_trace}-{grpc_parent}-01"),
            ),
        )
    assert answer.appeal_id

    kafka_trace, kafka_parent = secrets.token_hex(16), secrets.token_hex(8)
    surface = propagate.extract({"traceparent": f"00-{kafka_trace}-{kafka_parent}-01"})
    with otel_trace.get_tracer(__name__).start_as_current_span("surface", context=surface):
        await producer.publish(
            topics.APPEAL_REQUESTS,
            intake_pb2.AppealRequest(
                request_id=f"req-{uuid.uuid4().hex}",
                token=pipeline.surface_token("whatsapp"),
                submission=submission_proto(appeal_body("whatsapp")),
            ),
        )

    def routed(trace_id: str, entry: str) -> Callable[[], Trace | None]:
        """The trace once routing's consumer span and intake's entry span are both in it (each
        service exports on its own schedule: either may arrive first)."""

        def probe() -> Trace | None:
            found = jaeger.trace(trace_id)
            ok = (
                found is not None
                and any(s.service == "routing" and kind(s) == "consumer" for s in found.spans)
                and any(s.operation == entry for s in found.spans)
            )
            return found if ok else None

        return probe

    submit_rpc = "appeals.v1.Intake/SubmitAppeal"
    by_grpc = await eventually(
        lambda: asyncio.to_thread(routed(grpc_trace, submit_rpc)), "the gRPC trace"
    )
    (server,) = [s for s in by_grpc.spans if s.operation == submit_rpc]
    assert server.service == "intake" and kind(server) == "server"
    assert server.child_of == (grpc_parent,)
    assert server.tags["rpc.system"] == "grpc" and server.tags["rpc.grpc.status_code"] == 0

    process_request = f"process {topics.APPEAL_REQUESTS.name}"
    by_kafka = await eventually(
        lambda: asyncio.to_thread(routed(kafka_trace, process_request)), "the Kafka trace"
    )
    (request,) = [s for s in by_kafka.spans if s.operation == process_request]
    assert request.service == "intake" and kind(request) == "consumer"
    submitted = [
        s
        for s in _lifecycle_sends(by_kafka)
        if s.service == "intake" and _has_ancestor(by_kafka, s, request)
    ]
    assert submitted, "intake's submitted event is not part of the request's trace"


def _lifecycle_sends(trace: Trace) -> list[Span]:
    return [s for s in trace.spans if kind(s) == "producer" and destination(s) == LIFECYCLE]


def _reading(producer: Span) -> set[str]:
    """The services that process the lifecycle event ``producer`` sent."""
    kind_sent = str(producer.tags.get("appeals.event.type", ""))
    assert kind_sent, f"no event type on {producer.operation} of {producer.service}"
    return LIFECYCLE_READERS - {s for s, kinds in SKIPPING.items() if kind_sent in kinds}


def _readers(trace: Trace, producer: Span) -> set[str]:
    """Services whose consumer span is a child of ``producer``."""
    return {s.service for s in trace.spans if kind(s) == "consumer" and trace.parent(s) == producer}


def _carries(trace: Trace, span: Span, ancestor_operation: str) -> bool:
    """Whether ``span`` descends from a span named ``ancestor_operation``."""
    return any(a.operation == ancestor_operation for a in trace.ancestors(span))


def _has_ancestor(trace: Trace, span: Span, ancestor: Span) -> bool:
    return any(a.span_id == ancestor.span_id for a in trace.ancestors(span))


def _linked_trace(jaeger: JaegerQuery, span: Span) -> Trace | None:
    """The trace a span's link points into."""
    return jaeger.trace(span.follows_from_traces[0]) if span.follows_from_traces else None
