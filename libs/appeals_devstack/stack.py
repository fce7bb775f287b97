"""The whole local pipeline: infrastructure (Kafka, FerretDB) and the four service processes.

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

from appeals_devstack import processes
from appeals_devstack.ferretdb import FerretDB
from appeals_devstack.kafka import KafkaBroker, create_topics
from appeals_devstack.paths import REPO_ROOT
from appeals_runtime.topics import all_topic_names


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


SERVICES = (
    ServiceSpec("intake", "services.intake.main", "INTAKE_HTTP_PORT", 8080, "\033[36m"),
    ServiceSpec("routing", "services.routing.main", "ROUTING_HTTP_PORT", 8081, "\033[35m"),
    ServiceSpec(
        "notifications", "services.notifications.main", "NOTIFICATIONS_HTTP_PORT", 8082, "\033[33m"
    ),
    ServiceSpec("audit", "services.audit.main", "AUDIT_HTTP_PORT", 8083, "\033[32m"),
)
_RESET = "\033[0m"


@dataclass
class Infrastructure:
    """Kafka and the document store: started here, or existing servers named by the environment."""

    kafka_bootstrap_servers: str
    mongodb_url: str
    broker: KafkaBroker | None = None
    ferretdb: FerretDB | None = None

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
    ) -> Infrastructure:
        broker = (
            None
            if existing_kafka
            else KafkaBroker(state_dir / "kafka", kafka_port, kafka_controller_port)
        )
        ferret = None if existing_mongodb else FerretDB(state_dir / "ferretdb", mongodb_port)
        for port in ([kafka_port, kafka_controller_port] if broker else []) + (
            [mongodb_port] if ferret else []
        ):
            if processes.port_open(port):
                raise RuntimeError(
                    f"port {port} is already in use; is another stack running? (make down)"
                )
        infra = cls(
            kafka_bootstrap_servers=existing_kafka or (broker.bootstrap_servers if broker else ""),
            mongodb_url=existing_mongodb or (ferret.url if ferret else ""),
            broker=broker,
            ferretdb=ferret,
        )
        try:
            # Both start at once; the JVM is the slow one.
            for server in (broker, ferret):
                if server:
                    server.start()
            for server in (ferret, broker):
                if server:
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

    def pids(self) -> dict[str, int]:
        found = {}
        if self.broker and self.broker.process:
            found["kafka"] = self.broker.process.pid
        if self.ferretdb and self.ferretdb.process:
            found["ferretdb"] = self.ferretdb.process.pid
        return found

    def stop(self) -> None:
        if self.broker:
            self.broker.stop()
        if self.ferretdb:
            self.ferretdb.stop()


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
    # Routing and notifications read appellants' particulars from the intake started next to
    # them, wherever its gRPC port was moved.
    env.setdefault("INTAKE_GRPC_TARGET", f"127.0.0.1:{env.get('INTAKE_GRPC_PORT', '50051')}")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


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
