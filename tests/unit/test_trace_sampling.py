"""Head sampling: a quiet process traces everything, a busy one at most its budget of new traces,
and a trace begun upstream keeps its decision everywhere."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

from appeals_runtime import tracing
from appeals_runtime.telemetry import RateLimitedSampler


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def traced(per_second: float, clock: FakeClock) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(sampler=ParentBased(RateLimitedSampler(per_second, clock=clock)))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_a_burst_is_sampled_up_to_its_budget_then_new_traces_are_dropped() -> None:
    clock = FakeClock()
    provider, _ = traced(2.0, clock)  # burst: five seconds' worth, 10
    tracer = provider.get_tracer(__name__)

    recorded = [tracer.start_span(f"request {i}").is_recording() for i in range(25)]

    assert recorded == [True] * 10 + [False] * 15


def test_the_budget_refills_with_time() -> None:
    clock = FakeClock()
    provider, _ = traced(2.0, clock)
    tracer = provider.get_tracer(__name__)
    for i in range(10):
        tracer.start_span(f"burst {i}")
    assert not tracer.start_span("over budget").is_recording()

    clock.now += 1.0  # two more traces' worth

    assert [tracer.start_span(f"later {i}").is_recording() for i in range(3)] == [
        True,
        True,
        False,
    ]


def test_children_follow_their_root_and_cost_no_budget() -> None:
    clock = FakeClock()
    provider, exporter = traced(1.0, clock)  # burst 5
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("sampled root"):
        for i in range(20):
            with tracer.start_as_current_span(f"step {i}") as child:
                assert child.is_recording()
    assert len(exporter.get_finished_spans()) == 21
    # The root took one token of five: four more roots are sampled.
    assert [tracer.start_span(f"root {i}").is_recording() for i in range(5)] == [True] * 4 + [False]


def test_an_upstream_decision_is_kept_across_a_hop() -> None:
    """A record's stored traceparent carries the decision: the next service neither samples a
    dropped appeal nor drops a sampled one, whatever its own budget."""
    clock = FakeClock()
    upstream, _ = traced(1.0, clock)
    downstream, exporter = traced(0.0, clock)  # no budget of its own
    up = upstream.get_tracer(__name__)
    down = downstream.get_tracer(__name__)
    for i in range(5):
        up.start_span(f"spend {i}")  # upstream budget spent
    with up.start_as_current_span("dropped at the surface"):
        dropped = tracing.current_traceparent()
    clock.now += 1.0
    with up.start_as_current_span("sampled at the surface"):
        sampled = tracing.current_traceparent()

    with down.start_as_current_span("handle", context=tracing.context_of(sampled)) as span:
        assert span.is_recording()
    with down.start_as_current_span("handle", context=tracing.context_of(dropped)) as span:
        assert not span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["handle"]


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        RateLimitedSampler(-1.0)
