"""Ops metrics, black-box: a known workload through the four running services, then each service's
``/metrics`` is scraped and the counts must match what was done.

Counters of the shared pipeline also count other tests' appeals, so the test compares a scrape
taken before its workload with one taken after it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from appeals.v1 import appeal_pb2
from services.intake.validation import MAX_STATEMENT_CHARS
from tests.e2e.conftest import Pipeline
from tests.support import declared_metrics as metrics
from tests.support.bodies import appeal_body
from tests.support.pipeline import CHANNELS, review, submit_grpc, submit_rest
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, pipeline: Pipeline, service: str) -> Series:
    response = await client.get(f"{pipeline.url(service)}/metrics")
    assert response.status_code == 200
    series: Series = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def total(series: Series, name: str, **labels: str) -> float:
    """Sum of the series called ``name`` whose labels include ``labels`` (OTel attribute names)."""
    wanted = {(metrics.prometheus_label(k), v) for k, v in labels.items()}
    return sum(value for (n, found), value in series.items() if n == name and wanted <= found)


def delta(before: Series, after: Series, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def label_values(series: Series, name: str, label: str) -> set[str]:
    key = metrics.prometheus_label(label)
    return {dict(found).get(key, "") for (n, found) in series if n == name}


async def test_each_services_metrics_count_a_known_workload(pipeline: Pipeline) -> None:
    services = ("intake", "routing", "notifications", "audit")
    async with httpx.AsyncClient(timeout=20) as client:
        before = {s: await scrape(client, pipeline, s) for s in services}

        platform_of: dict[str, str] = {}
        bodies = {p: appeal_body(p) for p in ("facebook", "instagram", "whatsapp", "horizon")}
        for platform, body in bodies.items():
            response = await submit_rest(client, pipeline, body, uuid.uuid4().hex)
            assert response.status_code == 202, response.text
            platform_of[response.json()["appeal_id"]] = platform
        platform_of[await submit_grpc(pipeline, appeal_body("instagram", kind="reel"))] = (
            "instagram"
        )
        # Two refusals: the same item again while its appeal is open, and an invalid statement.
        again = await submit_rest(client, pipeline, bodies["facebook"], uuid.uuid4().hex)
        assert again.status_code == 409, again.text
        statement = "x" * (MAX_STATEMENT_CHARS + 1)  # within the body limit, over the field's
        invalid = {**appeal_body("horizon"), "statement": statement}
        too_long = await submit_rest(client, pipeline, invalid, uuid.uuid4().hex)
        assert too_long.status_code == 400, too_long.text

        overturned = {a for a, p in platform_of.items() if p in ("facebook", "whatsapp")}
        await review(
            pipeline,
            {
                appeal_id: (
                    appeal_pb2.OUTCOME_OVERTURNED
                    if appeal_id in overturned
                    else appeal_pb2.OUTCOME_UPHELD
                )
                for appeal_id in platform_of
            },
        )
        expected_deliveries = Counter(CHANNELS[p] for p in platform_of.values())

        async def settled() -> dict[str, Series] | None:
            """Every service finished its part: decisions delivered and audited."""
            now = {s: await scrape(client, pipeline, s) for s in services}
            delivered = {
                channel: delta(
                    before["notifications"], now["notifications"],
                    metrics.NOTIFICATIONS_DELIVERED.prometheus_name,
                    channel=channel, kind="decided",
                )
                for channel in expected_deliveries
            }  # fmt: skip
            audited = delta(
                before["audit"], now["audit"], metrics.AUDIT_APPENDED.prometheus_name,
                event_type="decided",
            )  # fmt: skip
            # Queue gauges are a snapshot the routing timer refreshes every few seconds.
            depth = label_values(now["routing"], metrics.QUEUE_DEPTH.prometheus_name, "queue")
            # The last events (notified) are still being read for a moment after delivery.
            caught_up = all(lifecycle_lag(now[s]) == 0 for s in services)
            done = delivered == dict(expected_deliveries) and audited >= len(platform_of)
            return now if done and depth and caught_up else None

        after = await eventually(settled, "decisions delivered and audited", timeout_s=90)

    check_intake(before["intake"], after["intake"], platform_of)
    check_routing(before["routing"], after["routing"], platform_of, overturned)
    failed = metrics.NOTIFICATIONS_FAILED.prometheus_name
    assert label_values(after["notifications"], failed, "channel") >= set(expected_deliveries)
    assert (
        delta(
            before["audit"], after["audit"], metrics.AUDIT_APPENDED.prometheus_name,
            event_type="decided",
        )
        == len(platform_of)
    )  # fmt: skip
    for service in services:
        check_runtime(service, after[service])


def lifecycle_lag(series: Series) -> float:
    return total(
        series,
        metrics.CONSUMER_LAG.prometheus_name,
        **{"messaging.destination.name": "appeals.lifecycle.v1"},
    )


def check_intake(before: Series, after: Series, platform_of: Mapping[str, str]) -> None:
    received = metrics.APPEALS_RECEIVED.prometheus_name
    rejected = metrics.APPEALS_REJECTED.prometheus_name
    assert delta(before, after, received, platform="facebook", channel="rest") == 1
    assert delta(before, after, received, platform="instagram", channel="rest") == 1
    assert delta(before, after, received, platform="instagram", channel="grpc") == 1
    assert delta(before, after, received) == len(platform_of)
    assert delta(before, after, rejected, reason="appeal_already_open", channel="rest") == 1
    assert delta(before, after, rejected, reason="invalid", channel="rest") == 1
    requests = metrics.HTTP_SERVER_DURATION.prometheus_series[2]  # _count
    posts = {"http.route": "/v1/appeals", "http.request.method": "POST"}
    assert delta(before, after, requests, **posts) == 6  # four accepted, two refused
    rpc_calls = metrics.RPC_SERVER_DURATION.prometheus_series[2]
    assert delta(before, after, rpc_calls, **{"rpc.method": "SubmitAppeal"}) == 1


def check_routing(
    before: Series, after: Series, platform_of: Mapping[str, str], overturned: set[str]
) -> None:
    routed = metrics.CASES_ROUTED.prometheus_name
    for platform, count in Counter(platform_of.values()).items():
        assert delta(before, after, routed, platform=platform) == count, platform
    decisions = metrics.DECISIONS.prometheus_name
    assert delta(before, after, decisions, outcome="overturned") == len(overturned)
    assert delta(before, after, decisions, outcome="upheld") == len(platform_of) - len(overturned)
    waited = metrics.TIME_TO_DECISION.prometheus_series[2]
    assert delta(before, after, waited) == len(platform_of)
    rpc_calls = metrics.RPC_SERVER_DURATION.prometheus_series[2]
    for method in ("Claim", "Decide"):
        assert delta(before, after, rpc_calls, **{"rpc.method": method}) == len(platform_of)
    assert label_values(after, metrics.QUEUE_DEPTH.prometheus_name, "queue")
    # Counters of events that did not happen exist at 0 for every queue that had a case.
    for counter in (metrics.SLA_WARNINGS, metrics.SLA_BREACHES):
        platforms = label_values(after, counter.prometheus_name, "platform")
        assert platforms >= set(platform_of.values()), counter.name


def check_runtime(service: str, series: Series) -> None:
    """What every service exposes: consumer lag per group and partition (handled: zero on the
    lifecycle topic), processing and store durations, DLQ sizes."""
    lag = metrics.CONSUMER_LAG.prometheus_name
    groups = label_values(series, lag, "messaging.consumer.group.name")
    assert groups, f"{service} reports no consumer lag"
    partitions = label_values(series, lag, "messaging.destination.partition.id")
    assert partitions, service
    assert lifecycle_lag(series) == 0, f"{service} is behind on the lifecycle topic"
    processed = metrics.MESSAGING_PROCESS_DURATION.prometheus_series[2]
    assert total(series, processed) > 0, service
    store_calls = metrics.DB_CLIENT_DURATION.prometheus_series[2]
    assert total(series, store_calls, **{"db.system.name": "mongodb"}) > 0, service
    dlq = metrics.DLQ_RECORDS.prometheus_name
    assert "appeals.lifecycle.v1.dlq" in label_values(series, dlq, "messaging.destination.name")
    for (name, _), _value in series.items():
        assert "ap_" not in name, name
    assert not any(value.startswith("ap_") for (_, found) in series for _, value in found), (
        f"{service} puts appeal ids in metric labels"
    )
