"""SLA timers on the real store and broker, with a controllable clock: one warning and one
breach per case however many routing instances sweep, escalation on breach, queue metrics."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from appeals.v1 import appeal_pb2
from appeals_runtime import store
from appeals_runtime.http import health_router
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.telemetry import setup_telemetry
from services.routing import main as routing_main
from services.routing.model import Status
from tests.support.desk import Clock, EventTap, agent, build_routing, of, route, submission

pytestmark = pytest.mark.integration


async def test_warning_and_breach_are_emitted_once_across_instances_and_the_breach_escalates(
    db: store.Database,
    producer: EventProducer,
    clock: Clock,
    routing: routing_main.RoutingParts,
    lifecycle: EventTap,
) -> None:
    other_instance = await build_routing(db, producer, clock)
    appeal_id = await route(routing, submission(action="restricted", country="US"), at=clock.now)
    state = await routing.ledger.state(appeal_id)
    assert state is not None
    due, warn = state.routing.sla_due_at, state.routing.sla_warn_at
    assert due - state.routing.received_at == timedelta(days=7)

    async def sweep_both() -> tuple[int, int]:
        reports = await asyncio.gather(routing.timers.sweep(), other_instance.timers.sweep())
        return sum(r.sla_warnings for r in reports), sum(r.sla_breaches for r in reports)

    clock.now = warn - timedelta(seconds=1)
    assert await sweep_both() == (0, 0)
    clock.now = warn
    assert await sweep_both() == (1, 0)
    assert await sweep_both() == (0, 0)
    clock.now = due - timedelta(minutes=1)
    await routing.desk.claim(agent("slow"), appeal_id)  # a reviewer on it does not stop the clock
    clock.now = due
    assert await sweep_both() == (0, 1)
    clock.advance(timedelta(minutes=1))
    assert await sweep_both() == (0, 0)

    after = await routing.ledger.state(appeal_id)
    assert after is not None
    assert (after.queue, after.sla_breached) == ("senior.en", True)
    assert after.priority == state.priority + 20
    assert after.status == Status.IN_REVIEW  # the reviewer keeps it, in its new queue
    await routing.desk.decide(
        agent("slow"), appeal_id, outcome=appeal_pb2.OUTCOME_UPHELD, rationale="Late but fair.",
        policy_cited="spam",
    )  # fmt: skip

    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "decided")))
    assert len(of(seen, appeal_id, "sla_warning")) == 1
    (breached,) = of(seen, appeal_id, "sla_breached")
    assert breached.sla_breached.queue == "instagram.integrity.en"
    (escalated,) = of(seen, appeal_id, "escalated")
    assert (escalated.escalated.target, escalated.escalated.to_queue) == ("sla_breach", "senior.en")


async def test_queue_metrics_are_exposed_on_metrics(
    routing: routing_main.RoutingParts, clock: Clock
) -> None:
    setup_telemetry("routing-tests", otlp_endpoint=None)
    await route(routing, submission(locale="ja-JP"), at=clock.now)
    await route(routing, submission(locale="ja-JP"), at=clock.now)
    clock.advance(timedelta(minutes=10))
    await routing.timers.sweep()
    app = FastAPI()
    app.include_router(health_router({}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://routing"
    ) as client:
        body = (await client.get("/metrics")).text
    depth = [line for line in body.splitlines() if 'queue="instagram.integrity.ja"' in line]
    assert any(
        line.startswith("appeals_routing_queue_depth") and line.endswith(" 2.0") for line in depth
    )
    assert any(
        line.startswith("appeals_routing_queue_oldest_age_seconds")
        and float(line.split()[-1]) >= 600
        for line in depth
    ), depth
    assert "appeals_routing_routed_total" in body
