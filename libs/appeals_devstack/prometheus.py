"""Prometheus (Debian's package, run as our own process): scrapes every service, evaluates rules.

The configuration is rendered from ``deploy/prometheus/prometheus.yml.j2`` with one job per
service and loads the rule files of ``deploy/prometheus/rules/``; data lives under the state dir.
Tests query it with :class:`PrometheusQuery`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jinja2

from appeals_devstack import processes
from appeals_devstack.paths import DEPLOY_PROMETHEUS, system_binary

RULES_DIR = DEPLOY_PROMETHEUS / "rules"


def render_config(
    targets: Mapping[str, str], *, scrape_interval: str = "5s", rules_dir: Path = RULES_DIR
) -> str:
    """The configuration scraping ``targets`` (job name → ``host:port`` serving ``/metrics``)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(DEPLOY_PROMETHEUS),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - renders YAML, not HTML
    )
    return environment.get_template("prometheus.yml.j2").render(
        targets=targets, scrape_interval=scrape_interval, rules_dir=rules_dir
    )


@dataclass
class Prometheus(processes.LocalServer):
    data_dir: Path
    port: int
    targets: Mapping[str, str]
    scrape_interval: str = "5s"
    binary: Path = field(default_factory=lambda: system_binary("prometheus"))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "prometheus.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "prometheus.yml"

    def query(self) -> PrometheusQuery:
        return PrometheusQuery(self.url)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            render_config(self.targets, scrape_interval=self.scrape_interval)
        )
        self._launch(
            [
                str(self.binary),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.data_dir / 'data'}",
                "--storage.tsdb.retention.time=2d",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ]
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        self._wait(self.query().ready, timeout=timeout, what=f"Prometheus on :{self.port}")


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class PrometheusQuery:
    """Prometheus's HTTP API: instant queries, targets, rules."""

    base_url: str
    timeout: float = 5.0

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/-/ready", timeout=self.timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def _data(self, path: str, params: Mapping[str, str] | None = None) -> object:
        response = httpx.get(f"{self.base_url}{path}", params=params, timeout=self.timeout)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[Sample]:
        """An instant vector query: one sample per series."""
        data = self._data("/api/v1/query", {"query": promql})
        assert isinstance(data, dict)
        if data["resultType"] != "vector":
            raise ValueError(f"{promql!r} is a {data['resultType']}, not an instant vector")
        return [Sample(item["metric"], float(item["value"][1])) for item in data["result"]]

    def targets(self) -> list[dict[str, object]]:
        """The active scrape targets with their job, health and last error."""
        data = self._data("/api/v1/targets", {"state": "active"})
        assert isinstance(data, dict)
        return list(data["activeTargets"])

    def rule_groups(self) -> list[dict[str, object]]:
        data = self._data("/api/v1/rules")
        assert isinstance(data, dict)
        return list(data["groups"])

    def wait_for(
        self,
        promql: str,
        condition: Callable[[list[Sample]], bool] = bool,
        *,
        timeout: float = 30.0,
    ) -> list[Sample]:
        """Poll ``promql`` until ``condition`` holds for its result (by default: not empty)."""
        deadline = time.monotonic() + timeout
        result: list[Sample] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if condition(result):
                return result
            time.sleep(0.5)
        raise TimeoutError(f"{promql!r} after {timeout:.0f}s: {result}")
