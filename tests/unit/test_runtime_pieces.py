"""Small runtime pieces that need no I/O: backoff, headers, JSON logs."""

from __future__ import annotations

import gc
import json
import logging

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from pymongo.errors import DuplicateKeyError, OperationFailure

from appeals_runtime import http, service, store
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import RetryPolicy
from appeals_runtime.logs import JsonFormatter


def test_backoff_grows_exponentially_within_its_cap() -> None:
    policy = RetryPolicy(initial_backoff_s=0.5, max_backoff_s=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0)]:
        delays = [policy.backoff(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range


def test_merge_replaces_headers_of_the_same_name_and_keeps_the_rest() -> None:
    merged = h.merge([("a", b"1"), ("b", b"2")], {"b": b"3", "c": b"4"})
    assert merged == [("a", b"1"), ("b", b"3"), ("c", b"4")]


def test_header_text_is_bounded() -> None:
    assert len(h.text("x" * 5000)) == 1000


def test_json_logs_carry_trace_ids_and_extra_fields() -> None:
    tracer = TracerProvider().get_tracer("test")
    record = logging.LogRecord(
        "svc", logging.INFO, __file__, 1, "appeal %s routed", ("ap-1",), None
    )
    record.appeal_id = "ap-1"
    with tracer.start_as_current_span("work") as span:
        line = JsonFormatter("routing").format(record)
    entry = json.loads(line)
    assert entry["msg"] == "appeal ap-1 routed"
    assert entry["service"] == "routing"
    assert entry["appeal_id"] == "ap-1"
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_a_busy_store_is_contention_and_a_broken_query_is_not() -> None:
    assert store.is_contention(OperationFailure("database is locked (5) (SQLITE_BUSY)", code=1))
    assert store.is_contention(OperationFailure("WriteConflict", code=112))
    assert not store.is_contention(OperationFailure("unknown operator: $nope", code=2))
    assert not store.is_contention(DuplicateKeyError("E11000 duplicate key", code=11000))


def test_retry_after_is_whole_seconds_between_one_and_a_day() -> None:
    assert http.retry_after_seconds(0.2) == 1
    assert http.retry_after_seconds(12.1) == 13
    assert http.retry_after_seconds(float("inf")) == http.MAX_RETRY_AFTER_S
    assert http.retry_after_seconds(float("nan")) == http.MAX_RETRY_AFTER_S
    assert http.retry_after_seconds(10**9) == http.MAX_RETRY_AFTER_S


async def test_an_unexpected_error_is_a_500_problem_not_an_escaped_exception() -> None:
    app = FastAPI()
    http.install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://service"
    ) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == http.PROBLEM_JSON
    assert response.json()["title"] == "Internal error"


def test_a_settled_heap_keeps_start_up_objects_out_of_collections() -> None:
    threshold = gc.get_threshold()
    start_up: list[list[int]] = [[1], [2]]  # alive once set up, like a service's clients
    try:
        service.settle_heap()
        collected = [o for generation in range(3) for o in gc.get_objects(generation)]
        assert all(all(o is not kept for o in collected) for kept in start_up)
        assert gc.get_threshold() == (service.GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mongodb://127.0.0.1:27017/", store.DEFAULT_POOL_SIZE),
        ("mongodb://127.0.0.1:27017/?maxPoolSize=40", 40),
        ("mongodb://127.0.0.1:27017/?appname=x&maxpoolsize=3", 3),
    ],
)
def test_a_store_client_keeps_a_small_pool_unless_its_url_says_otherwise(
    url: str, expected: int
) -> None:
    # Creating a client connects nothing: its options can be read without a store.
    client = store.create_client(url, app_name="tests")
    assert client.options.pool_options.max_pool_size == expected
