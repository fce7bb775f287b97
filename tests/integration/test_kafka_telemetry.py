"""What the Kafka runtime tells ops, against the real broker: consumer lag per partition, DLQ
size, and processing spans that continue the producer's trace."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from appeals.v1 import events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import metrics
from appeals_runtime.kafka.consumer import ConsumerRunner, InboundMessage
from appeals_runtime.kafka.dead_letters import DeadLetterProbe
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.telemetry import prometheus_exposition, setup_telemetry
from tests.support.kafka import appeal_event, scratch_topic

pytestmark = pytest.mark.integration

_exporter = InMemorySpanExporter()


def sample(metric: metrics.Metric, **labels: str) -> float | None:
    """The current value of one series of ``metric`` in this process's exposition."""
    wanted = [f'{metrics.prometheus_label(k)}="{v}"' for k, v in labels.items()]
    for line in prometheus_exposition()[0].decode().splitlines():
        if line.startswith(metric.prometheus_name + "{") and all(w in line for w in wanted):
            return float(line.rsplit(" ", 1)[1])
    return None


async def eventually(check: object, timeout_s: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_lag_is_what_the_group_has_not_handled_and_falls_to_zero(
    infra: Infrastructure, producer: EventProducer
) -> None:
    setup_telemetry("kafka-telemetry-tests", otlp_endpoint=None)
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    for n in range(6):
        await producer.publish(topic, appeal_event(f"ap_lag_{n}"))
    release = asyncio.Event()
    handled: list[str] = []

    async def slow(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        await release.wait()
        handled.append(message.payload.appeal_id)

    group = f"lag-{uuid.uuid4().hex[:8]}"
    runner = ConsumerRunner(
        name="lag",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=group,
        topics=[topic],
        handler=slow,
        producer=producer,
    )
    task = asyncio.create_task(runner.run())
    try:
        labels = {
            "messaging.consumer.group.name": group,
            "messaging.destination.name": topic.name,
            "messaging.destination.partition.id": "0",
        }
        # The first record is in the handler; the broker holds all six beyond the position.
        await eventually(lambda: sample(metrics.CONSUMER_LAG, **labels) is not None)
        assert sample(metrics.CONSUMER_LAG, **labels) == 6
        release.set()
        await eventually(lambda: len(handled) == 6)
        await eventually(lambda: sample(metrics.CONSUMER_LAG, **labels) == 0)
        assert (
            sample(
                metrics.CONSUMER_MESSAGES,
                **{"messaging.consumer.group.name": group, "outcome": "handled"},
            )
            == 6
        )
    finally:
        release.set()
        await runner.stop()
        await task
    assert sample(metrics.CONSUMER_LAG, **labels) is None  # a stopped runner reports nothing


async def test_dead_letter_topics_report_their_size(
    infra: Infrastructure, producer: EventProducer
) -> None:
    setup_telemetry("kafka-telemetry-tests", otlp_endpoint=None)
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=2)
    for n in range(3):
        await producer.publish_raw(topic.dlq, f"k{n}".encode(), b"not a protobuf", [])
    probe = DeadLetterProbe(
        infra.kafka_bootstrap_servers, [topic.dlq], refresh_s=0.2, client_id="tests"
    )
    task = asyncio.create_task(probe.run())
    try:
        await eventually(
            lambda: sample(metrics.DLQ_RECORDS, **{"messaging.destination.name": topic.dlq}) == 3
        )
    finally:
        await probe.stop()
        await task


async def test_processing_spans_continue_the_producers_trace(
    infra: Infrastructure, producer: EventProducer
) -> None:
    telemetry = setup_telemetry("kafka-telemetry-tests", otlp_endpoint=None)
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(_exporter))
    topic = await scratch_topic(infra.kafka_bootstrap_servers, partitions=1)
    done = asyncio.Event()
    inner: list[trace.SpanContext] = []

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        inner.append(trace.get_current_span().get_span_context())
        done.set()

    with trace.get_tracer(__name__).start_as_current_span("surface request") as root:
        await producer.publish(topic, appeal_event("ap_traced"))
    runner = ConsumerRunner(
        name="traced",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"traced-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=handle,
        producer=producer,
    )
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await runner.stop()
        await task

    spans = {s.name: s for s in _exporter.get_finished_spans() if topic.name in s.name}
    send, process = spans[f"send {topic.name}"], spans[f"process {topic.name}"]
    assert send.kind == SpanKind.PRODUCER and process.kind == SpanKind.CONSUMER
    assert send.context.trace_id == root.get_span_context().trace_id
    # The consumer span is the producer span's child, and the handler runs inside it.
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id
    assert inner[0].span_id == process.context.span_id
    assert process.attributes is not None
    assert process.attributes["appeals.appeal.id"] == "ap_traced"
    assert re.fullmatch(r"\d+", str(process.attributes["messaging.kafka.offset"]))
