"""Prometheus for real, with the configuration and rule files of ``deploy/prometheus``: it
scrapes a service's ``/metrics`` (here a stand-in that serves what a service would), tells a
service that does not answer from one that does (``up``), evaluates our recording rules, and
accepts every query of the Grafana dashboards."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from appeals_devstack.processes import free_port
from appeals_devstack.prometheus import Prometheus, PrometheusQuery
from tests.support.ops_files import dashboard_expressions

pytestmark = pytest.mark.integration

# What intake's /metrics says, in the OpenTelemetry Prometheus exporter's spelling.
EXPOSITION = b"""\
# HELP appeals_intake_received_total Appeals accepted
# TYPE appeals_intake_received_total counter
appeals_intake_received_total{platform="instagram",channel="rest"} 3
appeals_intake_received_total{platform="horizon",channel="grpc"} 1
"""


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(EXPOSITION)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def metrics_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, metrics_target: str
) -> Iterator[PrometheusQuery]:
    # routing's port has nobody listening: a service that is down.
    targets = {"intake": metrics_target, "routing": f"127.0.0.1:{free_port()}"}
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), free_port(), targets, "1s")
    server.start()
    try:
        server.wait_ready()
        yield server.query()
    finally:
        server.stop()


def test_scrapes_each_service_as_its_own_job(prometheus: PrometheusQuery) -> None:
    up = prometheus.wait_for("up", lambda samples: len(samples) == 2)
    assert {s.labels["job"]: s.value for s in up} == {"intake": 1.0, "routing": 0.0}
    received = prometheus.query("appeals_intake_received_total")
    assert {(s.labels["job"], s.labels["platform"], s.value) for s in received} == {
        ("intake", "instagram", 3.0),
        ("intake", "horizon", 1.0),
    }
    health = {t["labels"]["job"]: t["health"] for t in prometheus.targets()}  # type: ignore[index]
    assert health == {"intake": "up", "routing": "down"}


def test_loads_and_evaluates_our_rules(prometheus: PrometheusQuery) -> None:
    groups = {group["name"] for group in prometheus.rule_groups()}
    assert {"appeals-intake", "appeals-kafka", "alerts-availability", "alerts-sla"} <= groups
    recorded = prometheus.wait_for("platform:appeals_intake_received:rate5m", timeout=20)
    assert {s.labels["platform"] for s in recorded} == {"instagram", "horizon"}


DASHBOARD_QUERIES = list(dashboard_expressions())


@pytest.mark.parametrize(
    ("where", "expr"), DASHBOARD_QUERIES, ids=[w for w, _ in DASHBOARD_QUERIES]
)
def test_accepts_every_dashboard_query(prometheus: PrometheusQuery, where: str, expr: str) -> None:
    """Grafana sends these with its variables filled in; a syntax error would be a 400."""
    filled = expr.replace("$__rate_interval", "1m")
    for variable in ("$platform", "$queue", "$group"):
        filled = filled.replace(variable, ".*")
    try:
        prometheus.query(filled)
    except Exception as error:
        raise AssertionError(f"{where}: {filled}") from error
