"""Every metric and label the ops files under ``deploy/`` query exists.

Prometheus rules and Grafana panels name metrics as strings; a renamed metric would leave a
dashboard empty and an alert silent without any error. So every series name in their PromQL must
be a Prometheus series of a metric the runtime or a service declares, a series Prometheus
itself produces (``up``), or a recording rule of ours; and every label they match or group by
must be one those metrics carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from appeals_runtime.metrics import Kind, prometheus_label
from tests.support.declared_metrics import REGISTRY
from tests.support.ops_files import DASHBOARDS, RULE_FILES, dashboard_expressions

# Series Prometheus adds to every scrape.
STANDARD_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Labels every series has (job is the service), plus those of histograms and Prometheus itself.
STANDARD_LABELS = {"job", "instance", "le", "__name__"}

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_NUMBER = re.compile(r"(?<![\w:])\d[\w.]*")
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(series names, label names) that a PromQL expression refers to.

    A small lexer, not a parser: enough for the expressions we write (no label named like a
    function, no metric names in strings).
    """
    labels: set[str] = set()
    text = _VARIABLE.sub("1", expr)
    for matchers in _MATCHERS.findall(_STRING.sub('""', text)):
        labels |= {m.strip() for m in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers)}
    text = _MATCHERS.sub(" ", _STRING.sub('""', text))
    for names in _GROUPING.findall(text):
        labels |= {name.strip() for name in names.split(",") if name.strip()}
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", _OFFSET.sub(" ", _RANGE.sub(" ", text)))
    series = {
        name
        for name, call in _IDENTIFIER.findall(text)
        if not call and name.lower() not in _KEYWORDS
    }
    return series, labels


def rule_expressions() -> Iterator[tuple[str, str]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield f"{path.name}: {rule.get('record') or rule.get('alert')}", rule["expr"]


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


ALL_EXPRESSIONS = list(rule_expressions()) + list(dashboard_expressions())


def known_series() -> set[str]:
    names = set(STANDARD_SERIES) | recorded_names()
    for metric in REGISTRY.values():
        names |= set(metric.prometheus_series)
    return names


def known_labels() -> set[str]:
    labels = set(STANDARD_LABELS)
    for metric in REGISTRY.values():
        labels |= {prometheus_label(attribute) for attribute in metric.attributes}
    return labels


def test_the_lexer_finds_series_and_labels() -> None:
    expr = (
        'sum by (job, le) (rate(http_server_request_duration_seconds_bucket{job=~"a|b",'
        ' http_route!="/x"}[$__rate_interval] offset 5m)) / on (job) group_left up > 0.5e3'
    )
    assert promql_names(expr) == (
        {"http_server_request_duration_seconds_bucket", "up"},
        {"job", "le", "http_route"},
    )


def test_there_are_rules_and_dashboards_to_check() -> None:
    assert len(RULE_FILES) >= 2
    assert {path.stem for path in DASHBOARDS} >= {
        "pipeline-overview",
        "queues-and-slas",
        "per-platform",
        "kafka-health",
    }


@pytest.mark.parametrize(("where", "expr"), ALL_EXPRESSIONS, ids=[w for w, _ in ALL_EXPRESSIONS])
def test_every_series_queried_exists(where: str, expr: str) -> None:
    series, labels = promql_names(expr)
    assert series, f"{where}: no series found in {expr!r}"
    assert series <= known_series(), f"{where}: unknown series {series - known_series()}"
    assert labels <= known_labels(), f"{where}: unknown labels {labels - known_labels()}"


def test_recording_rules_follow_the_level_metric_operations_convention() -> None:
    for name in recorded_names():
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name), name


def test_counters_are_only_read_through_rate_or_increase() -> None:
    counters = {m.prometheus_name for m in REGISTRY.values() if m.kind is Kind.COUNTER}
    for where, expr in ALL_EXPRESSIONS:
        if "$" in where:  # a template variable lists label values: no rate needed
            continue
        for name in promql_names(expr)[0] & counters:
            assert re.search(rf"\b(rate|increase)\(\s*{name}\b", expr), (
                f"{where}: counter {name} read without rate() or increase()"
            )
