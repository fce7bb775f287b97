"""The ops page's figures, from expositions written by the same OpenTelemetry Prometheus exporter
the services use, with the metrics the services declare (no metric name is spelled here)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest

from appeals import events
from appeals.v1 import events_pb2
from appeals_runtime.metrics import Kind, Metric
from services.intake import model as intake_model
from services.ops import api, exposed, figures
from services.ops.config import parse_targets
from services.ops.figures import TargetScrape
from services.ops.history import History, increase
from services.ops.scraper import WATCH_GRACE_S, OpsBoard, OpsScraper
from tests.support import declared_metrics as m

Points = list[tuple[float, dict[str, str]]]


class Exporter:
    """One service process's /metrics: instruments made from registry declarations."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._provider = MeterProvider(
            metric_readers=[PrometheusMetricReader(registry=self.registry)]
        )
        self._meter = self._provider.get_meter("test")
        self.gauges: dict[str, Points] = {}

    def add(self, metric: Metric, value: float, **attributes: str) -> None:
        assert metric.kind is Kind.COUNTER
        counter = self._meter.create_counter(metric.name, unit=metric.unit)
        counter.add(value, attributes)

    def observe(self, metric: Metric, *values: float, **attributes: str) -> None:
        assert metric.kind is Kind.HISTOGRAM and metric.buckets
        histogram = self._meter.create_histogram(
            metric.name, unit=metric.unit, explicit_bucket_boundaries_advisory=list(metric.buckets)
        )
        for value in values:
            histogram.record(value, attributes)

    def gauge(self, metric: Metric, points: Points) -> None:
        if metric.name not in self.gauges:
            self._meter.create_observable_gauge(
                metric.name, [self._observe(metric.name)], unit=metric.unit
            )
        self.gauges[metric.name] = points

    def _observe(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        return lambda _: [Observation(v, a) for v, a in self.gauges[name]]

    def scrape(self, name: str) -> TargetScrape:
        text = generate_latest(self.registry).decode()
        return TargetScrape(name, f"http://{name}/metrics", figures.parse(text))


def _label(attribute: str) -> str:
    return m.prometheus_label(attribute)


@pytest.fixture
def pipeline() -> dict[str, Exporter]:
    intake, routing_a, routing_b, notifications = Exporter(), Exporter(), Exporter(), Exporter()
    help_a, help_b = Exporter(), Exporter()
    intake.add(m.APPEALS_RECEIVED, 5, platform="instagram", channel="rest")
    intake.add(m.APPEALS_RECEIVED, 2, platform="facebook", channel="grpc")
    intake.add(m.APPEALS_REJECTED, 1, reason="invalid", channel="rest")
    for routing, routed in ((routing_a, 3), (routing_b, 2)):
        routing.add(m.CASES_ROUTED, routed, queue="ig.hate", platform="instagram", rule="r1")
        # Both instances report the same store snapshot.
        routing.gauge(m.QUEUE_DEPTH, [(4, {"queue": "ig.hate"}), (1, {"queue": "fb.spam"})])
        routing.gauge(m.QUEUE_OLDEST_AGE, [(120.5, {"queue": "ig.hate"})])
        routing.gauge(m.QUEUE_BREACHED, [(1, {"queue": "ig.hate"})])
        routing.gauge(m.AGENTS_ONLINE, [(2, {})])
        routing.gauge(m.REFERRALS_OPEN, [(3, {"body": "oversight_board"}), (1, {"body": "ods:x"})])
        routing.gauge(
            m.REFERRALS_OVERDUE, [(1, {"body": "oversight_board"}), (0, {"body": "ods:x"})]
        )
        # Routing's live collection: every instance counts the same waiting chats.
        routing.gauge(m.CHATS_WAITING, [(3, {})])
    routing_a.add(m.CASES_ROUTED, 2, queue="fb.spam", platform="facebook", rule="r2")
    final = {"queue": "ig.hate", "platform": "instagram", "status": "decided"}
    routing_a.add(m.DECISIONS, 2, outcome="upheld", **final)
    routing_a.add(m.DECISIONS, 1, outcome="overturned", **final)
    routing_b.add(m.DECISIONS, 1, outcome="partially_overturned", **final)
    # A first review that awaits a second reviewer is not a decision yet.
    routing_b.add(
        m.DECISIONS, 1, outcome="overturned", **{**final, "status": "second_review_pending"}
    )
    routing_a.add(m.SLA_WARNINGS, 2, queue="ig.hate", platform="instagram")
    routing_b.add(m.SLA_BREACHES, 1, queue="ig.hate", platform="instagram")
    notifications.add(m.NOTIFICATIONS_DELIVERED, 6, channel="email", kind="decision")
    notifications.add(m.NOTIFICATIONS_DELIVERED, 1, channel="push", kind="received")
    notifications.add(
        m.NOTIFICATIONS_FAILED, 2, channel="email", kind="decision", permanent="false"
    )
    group, topic, partition = m.CONSUMER_LAG.attributes
    for exporter in (routing_a, routing_b):
        exporter.gauge(
            m.CONSUMER_LAG,
            [(7, {group: "routing", topic: "appeals.lifecycle.v1", partition: "0"})],
        )
    notifications.gauge(
        m.DLQ_RECORDS, [(3, {m.DLQ_RECORDS.attributes[0]: "appeals.lifecycle.v1.dlq"})]
    )
    # Two live-help instances, each counting and timing the chats it served.
    help_a.add(m.HELP_CHATS_OPENED, 4, topic="account_access")
    help_b.add(m.HELP_CHATS_OPENED, 2, topic="account_access")
    help_b.add(m.HELP_CHATS_OPENED, 1, topic="feature_help")
    help_a.add(m.HELP_CHATS_CLOSED, 2, resolution="resolved")
    help_b.add(m.HELP_CHATS_CLOSED, 1, resolution="closed_by_person")
    help_a.observe(m.HELP_CHAT_FIRST_ANSWER, 3, 8, 15)
    help_b.observe(m.HELP_CHAT_FIRST_ANSWER, 40, 100)
    help_a.observe(m.HELP_CHAT_RESOLUTION, 100, topic="account_access")
    help_b.observe(m.HELP_CHAT_RESOLUTION, 200, topic="account_access")
    help_b.observe(m.HELP_CHAT_RESOLUTION, 30, topic="feature_help")
    # Help's own count of waiting chats is per instance (a trend): the page reads routing's.
    help_a.gauge(m.HELP_CHATS_WAITING, [(7, {})])
    return {
        "intake": intake,
        "routing-a": routing_a,
        "routing-b": routing_b,
        "notifications": notifications,
        "help-a": help_a,
        "help-b": help_b,
    }


def snapshot(pipeline: dict[str, Exporter], *extra: TargetScrape) -> dict[str, Any]:
    return figures.snapshot([e.scrape(name) for name, e in pipeline.items()] + list(extra))


def test_the_exporters_series_names_are_the_registrys(pipeline: dict[str, Exporter]) -> None:
    scraped = pipeline["intake"].scrape("intake").series
    assert m.APPEALS_RECEIVED.prometheus_name in scraped
    for labels, _ in scraped[m.APPEALS_RECEIVED.prometheus_name]:
        # The exporter adds its otel_scope_* labels.
        assert {_label(a) for a in m.APPEALS_RECEIVED.attributes} <= set(labels)
    oldest = pipeline["routing-a"].scrape("routing").series
    assert m.QUEUE_OLDEST_AGE.prometheus_name in oldest  # the unit suffix included


def test_headline_figures_sum_counters_and_take_the_max_of_shared_gauges(
    pipeline: dict[str, Exporter],
) -> None:
    totals = snapshot(pipeline)["totals"]

    assert totals["received"] == 7
    assert totals["rejected"] == 1
    assert totals["routed"] == 7
    assert totals["decided"] == 4  # the pending second review is left out
    assert totals["reversals"] == 2  # overturned + partially overturned
    assert totals["notified"] == 7
    assert totals["notification_failures"] == 2
    assert totals["queue_depth"] == 5  # 4 + 1, not doubled by the second routing instance
    assert totals["oldest_wait_s"] == 120.5
    assert totals["breached_now"] == 1
    assert (totals["sla_warnings"], totals["sla_breaches"]) == (2, 1)
    assert totals["consumer_lag"] == 7
    assert totals["dlq_records"] == 3
    assert totals["agents_online"] == 4  # each instance has its own desk streams
    # Every instance counts the same live referrals: not doubled.
    assert (totals["referrals_open"], totals["referrals_overdue"]) == (4, 1)


def test_breakdowns_per_platform_queue_outcome_channel_and_partition(
    pipeline: dict[str, Exporter],
) -> None:
    shown = snapshot(pipeline)

    assert shown["platforms"] == [
        {"platform": "facebook", "received": 2, "routed": 2, "decided": 0, "reversals": 0},
        {"platform": "instagram", "received": 5, "routed": 5, "decided": 4, "reversals": 2},
    ]
    assert shown["received"] == [
        {"platform": "facebook", "channel": "grpc", "value": 2},
        {"platform": "instagram", "channel": "rest", "value": 5},
    ]
    assert shown["decisions"] == [
        {"outcome": "overturned", "value": 1},
        {"outcome": "partially_overturned", "value": 1},
        {"outcome": "upheld", "value": 2},
    ]
    hate = next(row for row in shown["queues"] if row["queue"] == "ig.hate")
    assert hate == {
        "queue": "ig.hate", "depth": 4, "oldest_wait_s": 120.5, "breached_now": 1, "routed": 5,
        "sla_warnings": 2, "sla_breaches": 1,
    }  # fmt: skip
    assert shown["notifications"] == [
        {"channel": "email", "delivered": 6, "failed": 2},
        {"channel": "push", "delivered": 1, "failed": 0},
    ]
    assert shown["consumer_lag"] == [
        {"group": "routing", "topic": "appeals.lifecycle.v1", "partition": "0", "lag": 7}
    ]
    assert shown["dlq"] == [{"topic": "appeals.lifecycle.v1.dlq", "records": 3}]
    assert shown["missing"] == [] and shown["no_data"] == []


def test_live_help_chats_waiting_opened_closed_and_their_times(
    pipeline: dict[str, Exporter],
) -> None:
    shown = snapshot(pipeline)
    totals, live_help = shown["totals"], shown["live_help"]

    assert totals["chats_waiting"] == 3  # routing's count, not doubled, not help's 7
    assert (totals["chats_opened"], totals["chats_closed"]) == (7, 3)
    assert live_help["opened"] == [
        {"topic": "account_access", "value": 6},
        {"topic": "feature_help", "value": 1},
    ]
    assert live_help["closed"] == [
        {"resolution": "closed_by_person", "value": 1},
        {"resolution": "resolved", "value": 2},
    ]
    # First answers 3, 8, 15, 40, 100 s over both instances: p50 in the 10-20 s bucket (the
    # third of five, halfway into it), p90 in the 90-120 s bucket.
    assert totals["first_answers"] == 5
    assert live_help["first_answer"] == {
        "count": 5, "p50_s": pytest.approx(15), "p90_s": pytest.approx(105)
    }  # fmt: skip
    assert totals["first_answer_p50_s"] == pytest.approx(15)
    assert totals["first_answer_p90_s"] == pytest.approx(105)
    # Resolutions: account access 100 and 200 s, feature help 30 s.
    assert live_help["resolution_by_topic"] == [
        {"topic": "account_access", "count": 2,
         "p50_s": pytest.approx(120), "p90_s": pytest.approx(264)},
        {"topic": "feature_help", "count": 1,
         "p50_s": pytest.approx(30), "p90_s": pytest.approx(54)},
    ]  # fmt: skip
    assert live_help["resolution"] == {
        "count": 3, "p50_s": pytest.approx(90), "p90_s": pytest.approx(246)
    }  # fmt: skip
    assert (totals["resolution_p50_s"], totals["resolution_p90_s"]) == (
        pytest.approx(90), pytest.approx(246)
    )  # fmt: skip


def test_live_help_without_answers_or_closes_yet_has_no_times() -> None:
    help_ = Exporter()
    help_.add(m.HELP_CHATS_OPENED, 1, topic="feature_help")

    shown = figures.snapshot([help_.scrape("help")])

    assert shown["totals"]["chats_opened"] == 1
    assert shown["live_help"]["first_answer"] == {"count": 0, "p50_s": None, "p90_s": None}
    assert shown["live_help"]["resolution_by_topic"] == []
    assert (shown["totals"]["first_answers"], shown["totals"]["first_answer_p50_s"]) == (0, 0)
    no_times = {"chats_waiting", "chats_closed", "first_answers", "first_answer_p50_s",
                "first_answer_p90_s", "resolution_p50_s", "resolution_p90_s"}  # fmt: skip
    assert no_times <= set(shown["no_data"])
    assert "chats_opened" not in shown["no_data"]
    assert m.HELP_CHAT_FIRST_ANSWER.name in shown["missing"]
    assert m.CHATS_WAITING.name in shown["missing"]


INF = math.inf


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        # Linear within the bucket the rank falls in; the first bucket starts at 0.
        ([(1, 2), (2, 6), (4, 8), (INF, 8)], 0.5, 1.5),
        ([(1, 2), (2, 6), (4, 8), (INF, 8)], 0.25, 1.0),
        ([(1, 2), (2, 6), (4, 8), (INF, 8)], 1.0, 4.0),
        ([(1, 2), (2, 6), (4, 8), (INF, 8)], 0.0, 0.0),
        # In any order, as the exposition lists them.
        ([(INF, 8), (4, 8), (1, 2), (2, 6)], 0.5, 1.5),
        # q = 0 with empty buckets first: where the first observation's bucket starts.
        ([(1, 0), (2, 3), (INF, 3)], 0.0, 1.0),
        # Beyond the highest finite bound: that bound (nothing better is known).
        ([(1, 1), (INF, 4)], 0.9, 1.0),
        # One observation: the quantiles spread over its bucket.
        ([(5, 0), (10, 1), (INF, 1)], 0.5, 7.5),
        # A count below the one before (instances scraped a moment apart): read as monotonic.
        ([(1, 3), (2, 2), (INF, 4)], 0.5, 2 / 3),
        # A first bucket at or below 0 is not stretched down to 0.
        ([(0, 2), (1, 2), (INF, 2)], 0.5, 0.0),
    ],
)
def test_quantiles_are_estimated_from_cumulative_buckets_as_prometheus_does(
    buckets: list[tuple[float, float]], q: float, expected: float
) -> None:
    assert figures.quantile(buckets, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    "buckets",
    [
        [],  # nothing exposed
        [(INF, 3)],  # no finite bound to place anything by
        [(1, 2), (2, 3)],  # no +Inf bucket: not a whole histogram
        [(1, 0), (2, 0), (INF, 0)],  # no observations
    ],
)
def test_no_quantile_without_observations_in_a_whole_histogram(
    buckets: list[tuple[float, float]],
) -> None:
    assert figures.quantile(buckets, 0.5) is None
    assert figures.timing(buckets)["p90_s"] is None


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_a_quantile_is_between_0_and_1(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        figures.quantile([(1, 1), (INF, 1)], q)


def test_histogram_buckets_add_up_over_instances_per_bound(
    pipeline: dict[str, Exporter],
) -> None:
    scrapes = [e.scrape(name) for name, e in pipeline.items()]
    first_answer = figures.histograms(scrapes, m.HELP_CHAT_FIRST_ANSWER)
    assert list(first_answer) == [()]
    counts = dict(first_answer[()])
    assert (counts[5], counts[10], counts[20], counts[60], counts[120], counts[INF]) == (
        1, 2, 3, 4, 5, 5
    )  # fmt: skip
    by_topic = figures.histograms(scrapes, m.HELP_CHAT_RESOLUTION, ("topic",))
    assert sorted(by_topic) == [("account_access",), ("feature_help",)]
    with pytest.raises(TypeError):
        figures.histograms(scrapes, m.HELP_CHATS_OPENED)


def test_a_target_that_is_down_is_named_and_its_metrics_are_no_data() -> None:
    intake = Exporter()
    intake.add(m.APPEALS_RECEIVED, 1, platform="horizon", channel="kafka")
    down = TargetScrape("routing", "http://127.0.0.1:1/metrics", error="ConnectError")

    shown = figures.snapshot([intake.scrape("intake"), down])

    assert shown["targets"][1] == {
        "name": "routing", "url": "http://127.0.0.1:1/metrics", "up": False, "error": "ConnectError"
    }  # fmt: skip
    assert shown["totals"]["received"] == 1
    assert m.QUEUE_DEPTH.name in shown["missing"]
    assert m.APPEALS_RECEIVED.name not in shown["missing"]
    assert {"routed", "decided", "queue_depth", "consumer_lag"} <= set(shown["no_data"])
    assert "received" not in shown["no_data"]
    assert shown["totals"]["queue_depth"] == 0
    assert shown["queues"] == []


def test_nothing_configured_or_nothing_reachable_is_all_zeros() -> None:
    shown = figures.snapshot([])
    assert shown["targets"] == []
    assert set(shown["totals"].values()) == {0}
    assert set(shown["no_data"]) == set(figures.FIGURE_SOURCES)


def test_what_is_not_an_exposition_is_refused() -> None:
    with pytest.raises(ValueError):
        figures.parse("<html>this is not prometheus</html>")


def _snapshot(**totals: float) -> dict[str, Any]:
    names = ("received", "routed", "decided", "notified", "notification_failures",
             "queue_depth", "consumer_lag", "dlq_records", "breached_now")  # fmt: skip
    return {"totals": {name: totals.get(name, 0.0) for name in names}, "queues": []}


def test_counter_increases_count_a_restart_as_a_reset() -> None:
    assert increase([1, 4, 9]) == 8
    assert increase([10, 12, 3, 5]) == 2 + 3 + 2  # restarted at 3
    assert increase([5]) == 0


def test_rates_are_per_minute_over_the_trailing_window() -> None:
    history = History(window_s=900, interval_s=2)
    history.add(1000, _snapshot(received=0))
    history.add(1010, _snapshot(received=5))
    point = history.add(1020, _snapshot(received=10, routed=4))
    assert point["rates"]["received"] == 30.0  # 10 in 20 s
    assert point["rates"]["routed"] == 12.0
    # Beyond the 30 s window only the recent points count.
    point = history.add(1060, _snapshot(received=10))
    assert point["rates"]["received"] == 0.0


def test_the_history_is_bounded_and_stays_in_time_order() -> None:
    history = History(window_s=10, interval_s=2)
    for second in range(0, 40, 2):
        history.add(second, _snapshot(received=second))
    assert len(history) == 6
    assert [p["t"] for p in history.points()] == [28, 30, 32, 34, 36, 38]
    history.add(33, _snapshot())  # the clock stepped back
    assert [p["t"] for p in history.points()][-2:] == [32, 33]


def test_metrics_targets_are_read_from_one_variable() -> None:
    assert parse_targets(" intake=http://127.0.0.1:8080/metrics, audit=http://a:8083/metrics ") == {
        "intake": "http://127.0.0.1:8080/metrics",
        "audit": "http://a:8083/metrics",
    }
    assert parse_targets("") == {}
    for bad in ("intake", "intake=ftp://x", "=http://x", "a=http://x,a=http://y"):
        with pytest.raises(ValueError):
            parse_targets(bad)


async def test_a_scrape_round_marks_each_target_up_or_down_with_the_reason() -> None:
    received = m.APPEALS_RECEIVED.prometheus_name

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "intake":
            return httpx.Response(200, text=f'{received}{{platform="whatsapp"}} 4\n')
        if request.url.host == "routing":
            return httpx.Response(503, text="not ready")
        if request.url.host == "notifications":
            return httpx.Response(200, text="<html>a login page</html>")
        raise httpx.ConnectError("connection refused", request=request)

    targets = {
        name: f"http://{name}/metrics" for name in ("intake", "routing", "notifications", "audit")
    }
    board = OpsBoard(targets, interval_s=2, window_s=60, trace_ui_url="http://jaeger")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        await OpsScraper(board).scrape_once(client)

    shown = {t["name"]: (t["up"], t["error"]) for t in board.latest["targets"]}
    assert shown["intake"] == (True, None)
    assert shown["routing"] == (False, "HTTP 503")
    assert shown["notifications"][1].startswith("not a Prometheus exposition")
    assert shown["audit"] == (False, "ConnectError: connection refused")
    assert board.latest["totals"]["received"] == 4
    assert board.version == 1 and len(board.history) == 1


async def test_viewers_wake_on_a_new_sample_and_when_the_board_closes() -> None:
    board = OpsBoard({}, interval_s=2, window_s=60, trace_ui_url="http://jaeger")
    assert await board.next_sample(0, timeout_s=0.05) == 0  # nothing new: the timeout passes
    waiting = asyncio.create_task(board.next_sample(0, timeout_s=5))
    await board.publish([])
    assert await waiting == 1
    waiting = asyncio.create_task(board.next_sample(1, timeout_s=5))
    await board.close()
    assert await asyncio.wait_for(waiting, 1) == 1 and board.closed


@pytest.mark.parametrize("event_type", events.EVENT_TYPES)
def test_the_ops_search_reads_status_from_the_trail_as_intake_does(event_type: str) -> None:
    event = events_pb2.AppealEvent(event_id="e-1", appeal_id="ap_1")
    getattr(event, event_type).SetInParent()
    change = intake_model.status_change(event)
    expected = "received" if event_type == "submitted" else change and change.status
    assert api.appeal_status(["submitted", event_type]) == (expected or "received")


def test_the_live_stream_is_left_out_of_http_telemetry_like_the_probes() -> None:
    exclude = api._telemetry()["exclude"]
    assert exclude is not None
    assert exclude({"path": api.STREAM_PATH}) and exclude({"path": "/metrics"})
    assert not exclude({"path": "/v1/ops/overview"})


class CountedTargets:
    """Metrics endpoints that count the scrapes they answer."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.answered: asyncio.Queue[int] = asyncio.Queue()

    def transport(self) -> httpx.MockTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            self.scrapes += 1
            self.answered.put_nowait(self.scrapes)
            return httpx.Response(200, text="")

        return httpx.MockTransport(answer)

    async def next_scrape(self) -> None:
        await asyncio.wait_for(self.answered.get(), 5)


async def settle() -> None:
    """Let every task that can run, run (no time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


def watched_board(monotonic: Callable[[], float] = lambda: 0.0) -> OpsBoard:
    # Next to no pause between rounds: a scraper on a timer would scrape on every turn.
    return OpsBoard(
        {"intake": "http://intake/metrics"},
        interval_s=1e-6,
        window_s=60,
        trace_ui_url="http://jaeger",
        monotonic=monotonic,
    )


async def test_nobody_watching_the_page_means_nothing_is_scraped() -> None:
    targets, board = CountedTargets(), watched_board()
    scraper = OpsScraper(board, targets.transport())
    running = asyncio.create_task(scraper.run())
    await settle()
    assert targets.scrapes == 0

    with board.watching():  # a live stream is open
        await targets.next_scrape()
        await targets.next_scrape()
    await settle()
    after_the_viewer_left = targets.scrapes
    await settle()
    assert targets.scrapes == after_the_viewer_left

    await scraper.stop()
    await asyncio.wait_for(running, 5)


async def test_an_overview_request_keeps_the_scraper_going_for_a_while() -> None:
    now = {"t": 100.0}
    targets, board = CountedTargets(), watched_board(lambda: now["t"])
    scraper = OpsScraper(board, targets.transport())
    running = asyncio.create_task(scraper.run())
    await settle()
    assert targets.scrapes == 0

    board.asked()
    await board.fresh()  # a viewer after a pause gets a round of its own before the answer
    assert board.version >= 1 and board.latest["targets"][0]["up"]
    now["t"] += WATCH_GRACE_S / 2
    await targets.next_scrape()  # still going
    now["t"] += WATCH_GRACE_S
    await settle()
    stopped_at = targets.scrapes
    await settle()
    assert targets.scrapes == stopped_at

    await scraper.stop()
    await asyncio.wait_for(running, 5)


@pytest.mark.parametrize("read", exposed.READ_FROM_SERVICES, ids=lambda metric: metric.name)
def test_what_the_page_reads_is_what_a_service_declares(read: Metric) -> None:
    """The page's copy of a metric matches the declaring service's, name, kind, unit and labels:
    a service that renames or relabels a metric the page reads fails here, not on the page."""
    declared = m.REGISTRY.get(read.name)
    assert declared is not None, f"no service declares {read.name}"
    assert (declared.kind, declared.unit, declared.attributes) == (
        read.kind, read.unit, read.attributes
    )  # fmt: skip


def test_the_page_reads_the_runtime_metrics_from_the_runtime() -> None:
    assert exposed.CONSUMER_LAG is m.CONSUMER_LAG
    assert exposed.DLQ_RECORDS is m.DLQ_RECORDS
