"""The ops files under ``deploy/`` are valid: Prometheus's own tool checks the configuration and
rules and runs the alerts' unit tests; Grafana's dashboards and provisioning, the collector's
configuration and the local Jaeger's are checked for what Grafana and the collector would refuse
or silently ignore. (Grafana does not run here; Prometheus and Jaeger run in the integration
tests.)"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from appeals_devstack.jaeger import JaegerPorts
from appeals_devstack.paths import DEPLOY_LOCAL, REPO_ROOT, system_binary
from appeals_devstack.prometheus import RULES_DIR, render_config
from appeals_devstack.stack import SERVICES
from tests.support.ops_files import DASHBOARDS, RULE_FILES

DEPLOY = REPO_ROOT / "deploy"
GRAFANA = DEPLOY / "grafana"
ALERT_TESTS = DEPLOY / "prometheus" / "tests"


def promtool(*args: str, cwd: Path = REPO_ROOT) -> str:
    result = subprocess.run(
        [str(system_binary("promtool")), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_promtool_checks_the_rule_files() -> None:
    promtool("check", "rules", *map(str, RULE_FILES))


def test_promtool_runs_the_alert_unit_tests() -> None:
    promtool("test", "rules", *map(str, sorted(ALERT_TESTS.glob("*.yml"))))


def test_promtool_checks_the_rendered_configuration(tmp_path: Path) -> None:
    targets = {spec.name: f"127.0.0.1:{spec.default_port}" for spec in SERVICES}
    targets["jaeger"] = f"127.0.0.1:{JaegerPorts().metrics}"
    config = tmp_path / "prometheus.yml"
    config.write_text(render_config(targets, rules_dir=RULES_DIR))
    output = promtool("check", "config", str(config))
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output, output
    assert output.count("rules found") == len(RULE_FILES), output
    jobs = [job["job_name"] for job in yaml.safe_load(config.read_text())["scrape_configs"]]
    assert jobs == [*(spec.name for spec in SERVICES), "jaeger"]


def test_every_alert_says_what_broke_and_where_its_runbook_is() -> None:
    runbooks = _headings(DEPLOY / "README.md")
    tested = "\n".join(path.read_text() for path in ALERT_TESTS.glob("*.yml"))
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "deploy/README.md" and anchor in runbooks, annotations["runbook"]
        assert f"alertname: {rule['alert']}\n" in tested, f"{rule['alert']} has no unit test"


def test_the_issue_s_alerts_exist() -> None:
    expressions = " ".join(rule["expr"] for rule in alert_rules())
    for needed in ("sla_breach", "consumer_lag", "dlq_records", "errors", "up{"):
        assert needed in expressions, needed


def _headings(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors = set()
    for line in markdown.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.fixture(scope="module")
def datasource_uids() -> dict[str, str]:
    provisioning = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )
    assert provisioning["apiVersion"] == 1
    return {source["uid"]: source["type"] for source in provisioning["datasources"]}


def test_datasources_are_prometheus_and_jaeger(datasource_uids: dict[str, str]) -> None:
    assert datasource_uids == {"prometheus": "prometheus", "jaeger": "jaeger"}


def test_the_dashboard_provider_loads_json_files() -> None:
    provisioning = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml").read_text()
    )
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_dashboard_is_well_formed(path: Path, datasource_uids: dict[str, str]) -> None:
    board = json.loads(path.read_text())
    assert board["schemaVersion"] >= 39
    assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
    assert board["title"] and "appeals" in board["tags"]
    variables = {variable["name"] for variable in board["templating"]["list"]}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in board["panels"]:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24 and position["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in datasource_uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in datasource_uids, panel["title"]
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']}: undefined {used - variables}"
    _assert_no_overlap(board["panels"])


def _assert_no_overlap(panels: list[dict[str, Any]]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        position = panel["gridPos"]
        for x in range(position["x"], position["x"] + position["w"]):
            for y in range(position["y"], position["y"] + position["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))


def test_platform_views_can_be_filtered_by_platform() -> None:
    board = json.loads((GRAFANA / "dashboards" / "per-platform.json").read_text())
    (variable,) = board["templating"]["list"]
    assert variable["name"] == "platform" and variable["includeAll"]


def test_collector_pipelines_use_only_defined_components() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector" / "config.yaml").read_text())
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    for name, pipeline in pipelines.items():
        assert pipeline["receivers"] == ["otlp"], name
        # The collector's documented order: limit memory first, batch last.
        assert pipeline["processors"][0] == "memory_limiter", name
        assert pipeline["processors"][-1] == "batch", name
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(config[kind]), f"{name}: undefined {kind}"
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    exporters = {name.split("/")[0] for name in config["exporters"]}
    assert "otlp" in exporters and exporters & {"prometheus", "prometheusremotewrite"}


def test_the_local_jaeger_configuration_renders_every_port() -> None:
    template = (DEPLOY_LOCAL / "jaeger.yaml.template").read_text()
    placeholders = set(re.findall(r"\$(\w+)", template))
    assert placeholders == {
        "otlp_grpc_port",
        "otlp_http_port",
        "query_port",
        "query_grpc_port",
        "metrics_port",
        "max_traces",
    }
    # Every listener is on the loopback interface.
    settings = "\n".join(
        line for line in template.splitlines() if not line.lstrip().startswith("#")
    )
    assert re.findall(r"endpoint: (\S+):", settings) == ["127.0.0.1"] * 4
    assert "host: 127.0.0.1" in settings
