"""The four services as separate processes against a real broker and store of their own.

The end-to-end tests get their own Kafka and FerretDB (overriding the session's ``infra`` and
``producer`` for this folder): the running services consume every lifecycle event from the start
of the topic, and integration tests publish there too; sharing one broker would let each side
react to the other's events.

The ops stack runs with them: the services export their traces to a Jaeger of this session
(fixture ``jaeger``: its query API) and a Prometheus of this session scrapes every service
(fixture ``prometheus``: its HTTP API), with the rule files of ``deploy/prometheus/rules``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appeals_devstack import devkeys
from appeals_devstack.jaeger import JaegerPorts, JaegerQuery
from appeals_devstack.processes import free_port
from appeals_devstack.prometheus import PrometheusQuery
from appeals_devstack.stack import (
    SERVICES,
    Infrastructure,
    OpsOptions,
    ServiceProcess,
    links_environment,
    service_environment,
    start_service,
    wait_all_ready,
)
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.query_log import QUERY_LOG_VARIABLE
from tests.conftest import private_stack, running_producer


@dataclass
class Pipeline:
    infra: Infrastructure
    database: str
    signing_key: Path
    services: dict[str, ServiceProcess]
    intake_grpc: str
    desk_grpc: str
    log_dir: Path

    def url(self, service: str) -> str:
        return self.services[service].base_url

    def surface_token(self, platform: str) -> str:
        return devkeys.mint_token(
            self.signing_key, role="surface", subject=f"{platform}-app", platforms=[platform]
        )

    def agent_token(self, name: str) -> str:
        return devkeys.mint_token(self.signing_key, role="agent", subject=name, queues=["*"])

    def ops_token(self) -> str:
        return devkeys.mint_token(self.signing_key, role="ops", subject="ops-e2e")

    def store_queries(self, since: float) -> list[dict[str, Any]]:
        """The store commands every service sent since ``since`` (time.time()), by shape:
        collection, command and whether it selected by ``_id`` (appeals_runtime.query_log)."""
        lines = []
        for path in sorted((self.log_dir / "store-queries").glob("*.jsonl")):
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                if entry["at"] >= since:
                    lines.append(entry)
        return lines

    def log_lines(self, service: str) -> list[str]:
        """Every line ``service`` logged so far (JSON, one record a line)."""
        return (self.log_dir / f"{service}.log").read_text(errors="replace").splitlines()

    def full_logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.log_dir.glob("*.log"))

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


APPEALS = str(Path(sys.executable).with_name("appeals"))


def cli_environment(pipeline: Pipeline) -> dict[str, str]:
    """The environment that points the `appeals` command at the test pipeline."""
    return {
        **os.environ,
        "APPEALS_INTAKE_URL": pipeline.url("intake"),
        "APPEALS_AGENT_DESK": pipeline.desk_grpc,
        "APPEALS_DEV_SIGNING_KEY_FILE": str(pipeline.signing_key),
    }


def appeals(
    pipeline: Pipeline, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the `appeals` command against the test pipeline."""
    return subprocess.run(
        [APPEALS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_environment(pipeline),
        check=False,
    )


@pytest.fixture(scope="session")
def service_ports() -> dict[str, str]:
    """Each service's HTTP port variable → a free port, chosen before the stack starts so that
    Prometheus knows where to scrape."""
    return {spec.port_variable: str(free_port()) for spec in SERVICES}


@pytest.fixture(scope="session")
def infra(
    tmp_path_factory: pytest.TempPathFactory, service_ports: dict[str, str]
) -> Iterator[Infrastructure]:
    ops = OpsOptions.for_services(
        service_ports,
        jaeger_ports=JaegerPorts.free(),
        prometheus_port=free_port(),
        scrape_interval="1s",
    )
    with private_stack(tmp_path_factory.mktemp("e2e-stack"), ops) as started:
        yield started


@pytest.fixture(scope="session")
def jaeger(infra: Infrastructure) -> JaegerQuery:
    """The query API of the Jaeger the services export their traces to."""
    assert infra.jaeger is not None
    return infra.jaeger.query()


@pytest.fixture(scope="session")
def prometheus(infra: Infrastructure) -> PrometheusQuery:
    """The HTTP API of the Prometheus that scrapes every service of the pipeline."""
    assert infra.prometheus is not None
    return infra.prometheus.query()


@pytest.fixture(scope="session")
async def producer(infra: Infrastructure) -> AsyncIterator[EventProducer]:
    async with running_producer(infra, "e2e") as publisher:
        yield publisher


@contextlib.contextmanager
def running_pipeline(
    infra: Infrastructure, state: Path, overrides: dict[str, str] | None = None
) -> Iterator[Pipeline]:
    """The four services and the ops page as processes on ``infra``, with a database and dev
    keys of their own; ``overrides``: environment variables the test sets (ports, timeouts)."""
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    env = service_environment(infra, base=os.environ)
    env.update(devkeys.service_environment(state))
    intake_grpc, desk_grpc = free_port(), free_port()
    env.update({spec.port_variable: str(free_port()) for spec in SERVICES})
    env.update(
        {
            "MONGODB_DATABASE": database,
            "INTAKE_GRPC_PORT": str(intake_grpc),
            "INTAKE_GRPC_TARGET": f"127.0.0.1:{intake_grpc}",
            "ROUTING_GRPC_PORT": str(desk_grpc),
            "ROUTING_OFFER_POLL_S": "0.2",
            "LOG_LEVEL": "INFO",
            # Keep audit's checkpoint files and dev keys out of the checkout.
            "AUDIT_STATE_DIR": str(state / "audit"),
            "OPS_SCRAPE_INTERVAL_S": "1",
            # Each service logs the shape of its store commands (test_store_queries reads it).
            QUERY_LOG_VARIABLE: str(state / "store-queries"),
            **(overrides or {}),
        }
    )
    env.update(links_environment(env))
    started: dict[str, ServiceProcess] = {}
    try:
        for spec in SERVICES:
            started[spec.name] = start_service(spec, env, log_path=state / f"{spec.name}.log")
        wait_all_ready(list(started.values()), timeout=60)
        yield Pipeline(
            infra=infra,
            database=database,
            signing_key=devkeys.ensure(state)[0],
            services=started,
            intake_grpc=f"127.0.0.1:{intake_grpc}",
            desk_grpc=f"127.0.0.1:{desk_grpc}",
            log_dir=state,
        )
    finally:
        for service in started.values():
            service.stop()


@pytest.fixture(scope="session")
def pipeline(
    infra: Infrastructure, service_ports: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    # The ports Prometheus of the session scrapes.
    with running_pipeline(infra, tmp_path_factory.mktemp("pipeline"), service_ports) as started:
        yield started
