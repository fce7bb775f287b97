"""The ops stack watches the running pipeline: Prometheus scrapes every service's /metrics, and
every service's spans reach Jaeger, one trace following an appeal from intake onwards."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from appeals_devstack.jaeger import JaegerQuery, Trace
from appeals_devstack.prometheus import PrometheusQuery
from appeals_devstack.stack import PIPELINE, SERVICES
from tests.e2e.conftest import Pipeline
from tests.support.bodies import appeal_body
from tests.support.pipeline import submit_rest
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

NAMES = {spec.name for spec in SERVICES}
# The services an appeal passes through (the ops page has spans only when someone uses it).
PIPELINE_NAMES = {spec.name for spec in PIPELINE}
JOBS = f'job=~"{"|".join(sorted(NAMES))}"'


async def test_prometheus_scrapes_every_service(
    pipeline: Pipeline, prometheus: PrometheusQuery
) -> None:
    def all_up() -> dict[str, float] | None:
        up = {s.labels["job"]: s.value for s in prometheus.query(f"up{{{JOBS}}}")}
        return up if up == dict.fromkeys(NAMES, 1.0) else None

    await eventually(lambda: asyncio.to_thread(all_up), "every service scraped and up", 30)
    # Each job's own series, not only the ones Prometheus adds to every scrape.
    counts = prometheus.query(f'count by (job) ({{{JOBS}, __name__!~"up|scrape_.*"}})')
    assert {s.labels["job"] for s in counts if s.value > 0} == NAMES


async def test_an_appeal_s_trace_reaches_jaeger_from_every_service(
    pipeline: Pipeline, jaeger: JaegerQuery
) -> None:
    async with httpx.AsyncClient(timeout=15) as client:
        response = await submit_rest(client, pipeline, appeal_body("whatsapp"), str(uuid.uuid4()))
    assert response.status_code == 202, response.text

    def every_service_reported() -> list[str] | None:
        services = jaeger.services()
        return services if set(services) >= PIPELINE_NAMES else None

    await eventually(lambda: asyncio.to_thread(every_service_reported), "spans of all four")

    def crossing_trace() -> Trace | None:
        traces = jaeger.find("intake", limit=50)
        # An appeal's trace runs intake → routing; a reviewer's claim runs routing → intake
        # (the statement is read from intake), so the edge's direction picks the right one.
        return next((t for t in traces if ("intake", "routing") in t.service_edges()), None)

    found = await eventually(lambda: asyncio.to_thread(crossing_trace), "intake → routing trace")
    assert ("intake", "routing") in found.service_edges()
