"""The metric registry: names, kinds and the Prometheus names it promises."""

from __future__ import annotations

import re

import pytest

from appeals_runtime import metrics
from appeals_runtime.telemetry import prometheus_exposition, setup_telemetry
from tests.support import declared_metrics

# OpenTelemetry semantic-convention metrics we export under their standard names.
_STANDARD = {
    "http.server.request.duration",
    "rpc.server.call.duration",
    "messaging.process.duration",
    "messaging.client.operation.duration",
    "db.client.operation.duration",
}


def test_own_metrics_start_with_appeals_and_the_rest_are_standard() -> None:
    for name in declared_metrics.REGISTRY:
        assert name.startswith("appeals.") or name in _STANDARD, name


def test_names_are_lowercase_dotted_and_described() -> None:
    for metric in declared_metrics.REGISTRY.values():
        assert re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+", metric.name), metric.name
        assert metric.description.strip(), metric.name
        assert metric.unit, metric.name


def test_a_metric_cannot_be_declared_twice() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        metrics.declare("appeals.intake.received", metrics.Kind.COUNTER, "1", "again")


def test_instruments_must_match_their_declared_kind() -> None:
    with pytest.raises(TypeError, match="is a counter, not a histogram"):
        metrics.histogram(declared_metrics.APPEALS_RECEIVED)


def test_prometheus_names_are_what_the_exporter_writes() -> None:
    setup_telemetry("registry-tests", otlp_endpoint=None)
    counter = metrics.Metric(
        "appeals.test.things", metrics.Kind.COUNTER, "{thing}", "test counter", ("kind",)
    )
    histogram = metrics.Metric(
        "appeals.test.wait", metrics.Kind.HISTOGRAM, "s", "test histogram", (), (0.1, 1)
    )
    gauge = metrics.Metric("appeals.test.level", metrics.Kind.GAUGE, "s", "test gauge")
    metrics.counter(counter).add(2, {"kind": "a"})
    metrics.histogram(histogram).record(0.5)
    metrics.gauge(gauge, lambda: [(7.0, {"messaging.destination.name": "t"})])

    exposition = prometheus_exposition()[0].decode()

    assert counter.prometheus_name == "appeals_test_things_total"
    assert histogram.prometheus_series == (
        "appeals_test_wait_seconds_bucket",
        "appeals_test_wait_seconds_sum",
        "appeals_test_wait_seconds_count",
    )
    assert gauge.prometheus_name == "appeals_test_level_seconds"
    assert re.search(r'^appeals_test_things_total\{.*kind="a".*\} 2\.0$', exposition, re.M)
    assert re.search(r'^appeals_test_wait_seconds_bucket\{.*le="1".*\} 1\.0$', exposition, re.M)
    label = metrics.prometheus_label("messaging.destination.name")
    assert re.search(rf'^appeals_test_level_seconds\{{.*{label}="t".*\}} 7\.0$', exposition, re.M)
