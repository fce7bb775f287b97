"""The ops files under ``deploy/``: Prometheus's rule files, Grafana's dashboards and the PromQL
their panels and variables query."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from appeals_devstack.paths import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", target["expr"]
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"]
                inner = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
                assert inner, f"{path.name}: variable {variable['name']}: {query}"
                yield f"{path.name}: ${variable['name']}", f"{inner[1]}{{{inner[2]}!=''}}"
