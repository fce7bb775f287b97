"""The whole local pipeline: infrastructure and the four service processes.

Infrastructure is Kafka and FerretDB, and optionally the ops stack: Jaeger (the services' traces
go to its OTLP port) and Prometheus (scraping every service's ``/metrics``).

Shared by `make run` / `make up` / `make down` (see ``__main__``) and by the test session, which
starts its own instance on free ports in a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from appeals.topics import all_topic_names
from appeals_devstack import processes
from appeals_devstack.ferretdb import FerretDB
from appeals_devstack.jaeger import Jaeger, JaegerPorts
from appeals_devstack.kafka import KafkaBroker, create_topics
from appeals_devstack.paths import REPO_ROOT
from appeals_devstack.prometheus import Prometheus


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    # Environment variable naming the HTTP port, and its default.
    port_variable: str
    default_port: int
    colour: str

    def port(self, env: Mapping[str, str]) -> int:
        return int(env.get(self.port_variable, self.default_port))


# The four services an appeal passes through.
PIPELINE = (
    ServiceSpec("intake", "services.intake.main", "INTAKE_HTTP_PORT", 8080, "\033[36m"),
    ServiceSpec("routing", "services.routing.main", "ROUTING_HTTP_PORT", 8081, "\033[35m"),
    ServiceSpec(
        "notifications", "services.notifications.main", "NOTIFICATIONS_HTTP_PORT", 8082, "\033[33m"
    ),
    ServiceSpec("audit", "services.audit.main", "AUDIT_HTTP_PORT", 8083, "\033[32m"),
)
# Live help for people locked out of their accounts (sends its codes through notifications).
LIVE_HELP = ServiceSpec("help", "services.help.main", "HELP_HTTP_PORT", 8085, "\033[91m")
# The ops page, which watches them (started last, after the audit log it reads).
OPS_PAGE = ServiceSpec("ops", "services.ops.main", "OPS_HTTP_PORT", 8084, "\033[34m")
SERVICES = (*PIPELINE, LIVE_HELP, OPS_PAGE)
_RESET = "\033[0m"


@dataclass(frozen=True)
class OpsOptions:
    """What of the ops stack to start: Jaeger unless an OTLP endpoint exists, and Prometheus."""

    jaeger_ports: JaegerPorts | None
    prometheus_port: int | None
    # Prometheus jobs: service name → host:port of its /metrics.
    scrape_targets: Mapping[str, str]
    existing_otlp_endpoint: str | None = None
    scrape_interval: str = "5s"

    @classmethod
    def for_services(
        cls,
        env: Mapping[str, str],
        *,
        jaeger_ports: JaegerPorts | None,
        prometheus_port: int | None,
        scrape_interval: str = "5s",
    ) -> OpsOptions:
        """Scrape each service at the HTTP port ``env`` gives it; reuse an OTLP endpoint it sets."""
        existing = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
        return cls(
            jaeger_ports=None if existing else jaeger_ports,
            prometheus_port=prometheus_port,
            scrape_targets={spec.name: f"127.0.0.1:{spec.port(env)}" for spec in SERVICES},
            existing_otlp_endpoint=existing,
            scrape_interval=scrape_interval,
        )


@dataclass
class Infrastructure:
    """Kafka and the document store (started here, or existing servers named by the environment),
    and the ops stack when asked for."""

    kafka_bootstrap_servers: str
    mongodb_url: str
    broker: KafkaBroker | None = None
    ferretdb: FerretDB | None = None
    jaeger: Jaeger | None = None
    prometheus: Prometheus | None = None
    # Where the services send traces (and metrics) over OTLP/gRPC; None: they export nothing.
    otlp_endpoint: str | None = None

    @classmethod
    def start(
        cls,
        state_dir: Path,
        *,
        kafka_port: int,
        kafka_controller_port: int,
        mongodb_port: int,
        existing_kafka: str | None = None,
        existing_mongodb: str | None = None,
        topic_partitions: int = 3,
        ops: OpsOptions | None = None,
    ) -> Infrastructure:
        broker = (
            None
            if existing_kafka
            else KafkaBroker(state_dir / "kafka", kafka_port, kafka_controller_port)
        )
        ferret = None if existing_mongodb else FerretDB(state_dir / "ferretdb", mongodb_port)
        jaeger, prometheus = _ops_servers(state_dir, ops)
        ports = ([kafka_port, kafka_controller_port] if broker else []) + (
            [mongodb_port] if ferret else []
        )
        ports += (jaeger.ports.all() if jaeger else []) + ([prometheus.port] if prometheus else [])
        for port in ports:
            if processes.port_open(port):
                raise RuntimeError(
                    f"port {port} is already in use; is another stack running? (make down)"
                )
        infra = cls(
            kafka_bootstrap_servers=existing_kafka or (broker.bootstrap_servers if broker else ""),
            mongodb_url=existing_mongodb or (ferret.url if ferret else ""),
            broker=broker,
            ferretdb=ferret,
            jaeger=jaeger,
            prometheus=prometheus,
            otlp_endpoint=(
                jaeger.otlp_endpoint if jaeger else ops.existing_otlp_endpoint if ops else None
            ),
        )
        try:
            # All start at once; the JVM is the slow one.
            for server in infra._servers():
                server.start()
            for server in reversed(infra._servers()):
                server.wait_ready()
            asyncio.run(
                create_topics(
                    infra.kafka_bootstrap_servers,
                    list(all_topic_names()),
                    partitions=topic_partitions,
                )
            )
        except BaseException:
            infra.stop()
            raise
        return infra

    def _named(self) -> dict[str, KafkaBroker | FerretDB | Jaeger | Prometheus]:
        named = {
            "kafka": self.broker,
            "ferretdb": self.ferretdb,
            "jaeger": self.jaeger,
            "prometheus": self.prometheus,
        }
        return {name: server for name, server in named.items() if server is not None}

    def _servers(self) -> list[KafkaBroker | FerretDB | Jaeger | Prometheus]:
        return list(self._named().values())

    def pids(self) -> dict[str, int]:
        return {
            name: server.process.pid
            for name, server in self._named().items()
            if server.process is not None
        }

    def stop(self) -> None:
        for server in self._servers():
            server.stop()


# What Infrastructure may run, by the name of its pid file (`make status`, `make down`).
INFRASTRUCTURE_NAMES = ("kafka", "ferretdb", "jaeger", "prometheus")


def _ops_servers(
    state_dir: Path, ops: OpsOptions | None
) -> tuple[Jaeger | None, Prometheus | None]:
    if ops is None:
        return None, None
    jaeger = Jaeger(state_dir / "jaeger", ops.jaeger_ports) if ops.jaeger_ports else None
    if ops.prometheus_port is None:
        return jaeger, None
    targets = dict(ops.scrape_targets)
    if jaeger is not None:
        targets["jaeger"] = jaeger.metrics_target
    prometheus = Prometheus(
        state_dir / "prometheus", ops.prometheus_port, targets, ops.scrape_interval
    )
    return jaeger, prometheus


@dataclass
class ServiceProcess:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    http_port: int
    log_path: Path | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 25.0) -> None:
        processes.stop_group(self.process.pid, timeout=timeout, process=self.process)
        if self._pump is not None:
            self._pump.join(timeout=2)


def start_service(
    spec: ServiceSpec, env: Mapping[str, str], *, log_path: Path | None, echo: IO[str] | None = None
) -> ServiceProcess:
    """Start one service as its own process, logging to ``log_path`` or, prefixed, to ``echo``."""
    process = processes.spawn(
        [sys.executable, "-m", spec.module], log_path=log_path, env=dict(env), cwd=REPO_ROOT
    )
    started = ServiceProcess(spec, process, spec.port(env), log_path)
    if log_path is None and process.stdout is not None:
        started._pump = threading.Thread(
            target=_prefix_lines, args=(spec, process.stdout, echo or sys.stdout), daemon=True
        )
        started._pump.start()
    return started


def _prefix_lines(spec: ServiceSpec, stream: IO[bytes], out: IO[str]) -> None:
    colour = spec.colour if out.isatty() else ""
    reset = _RESET if colour else ""
    prefix = f"{colour}{spec.name:<13}|{reset} "
    for raw in iter(stream.readline, b""):
        out.write(prefix + raw.decode(errors="replace"))
        out.flush()


def service_environment(
    infra: Infrastructure, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["KAFKA_BOOTSTRAP_SERVERS"] = infra.kafka_bootstrap_servers
    env["MONGODB_URL"] = infra.mongodb_url
    if infra.otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = infra.otlp_endpoint
    if infra.jaeger is not None:
        # Export finished spans every half second (the SDK's default is 5 s), so that a trace
        # is in Jaeger by the time someone looks for it.
        env.setdefault("OTEL_BSP_SCHEDULE_DELAY", "500")
        # The ops page links each appeal's trace to this Jaeger's UI.
        env.setdefault("OPS_TRACE_UI_URL", infra.jaeger.query_url)
    # Routing and notifications read appellants' particulars from the intake started next to
    # them, wherever its gRPC port was moved.
    env.setdefault("INTAKE_GRPC_TARGET", f"127.0.0.1:{env.get('INTAKE_GRPC_PORT', '50051')}")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def links_environment(env: Mapping[str, str]) -> dict[str, str]:
    """Where the services of a local stack find each other, at the ports ``env`` gives them:
    the ops page scrapes every pipeline service's and live help's ``/metrics`` and reads audit's
    trails; audit's reconciliation reads intake's records; live help sends its codes through
    notifications and looks accounts up in the DEVELOPMENT-ONLY sample file, and notifications
    keeps those codes readable in its records (what the local recording sinks received)."""

    def url(name: str) -> str:
        spec = next(spec for spec in PIPELINE if spec.name == name)
        return f"http://127.0.0.1:{spec.port(env)}"

    return {
        "OPS_METRICS_TARGETS": ",".join(
            f"{spec.name}=http://127.0.0.1:{spec.port(env)}/metrics"
            for spec in (*PIPELINE, LIVE_HELP)
        ),
        "OPS_AUDIT_URL": url("audit"),
        "AUDIT_INTAKE_URL": url("intake"),
        "HELP_NOTIFICATIONS_URL": url("notifications"),
        "HELP_INTAKE_URL": url("intake"),
        "ROUTING_HELP_URL": f"http://127.0.0.1:{LIVE_HELP.port(env)}",
        "HELP_ACCOUNTS_FILE": str(REPO_ROOT / "services" / "help" / "dev_accounts.yaml"),
        "NOTIFICATIONS_KEEP_CODE_TEXT": "1",
    }


def wait_all_ready(started: list[ServiceProcess], timeout: float = 60.0) -> None:
    for service in started:
        processes.wait_until(
            service.is_ready,
            timeout=timeout,
            what=f"{service.spec.name} /readyz on :{service.http_port}",
            alive=lambda s=service: s.process.poll() is None,  # type: ignore[misc]
            log_path=service.log_path,
        )


def iter_specs(names: list[str] | None = None) -> Iterator[ServiceSpec]:
    for spec in SERVICES:
        if not names or spec.name in names:
            yield spec
