"""The bench's own pipeline: Kafka, FerretDB, Jaeger and the four services on free ports.

Started the way ``make run`` starts its stack (``appeals_devstack``): the same servers, the same
service environment with dev keys and service tokens, traces exported to Jaeger; not the ops
page (nobody watches it here). Only the ports (all free ones, so it never collides with a
``make run`` or a test session) and the state folder (a temporary one) differ. No Prometheus:
the bench reads what it needs itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appeals_devstack import devkeys
from appeals_devstack.jaeger import JaegerPorts
from appeals_devstack.kafka import create_topics
from appeals_devstack.processes import free_port
from appeals_devstack.stack import (
    PIPELINE,
    Infrastructure,
    OpsOptions,
    ServiceProcess,
    service_environment,
    start_service,
    wait_all_ready,
)

DATABASE = "appeals"
# Topics of the limit measurements, next to the pipeline's on the same broker.
RELAY_TOPICS = ("bench.relay.in", "bench.relay.out")
BARE_ENDPOINT_TOPIC = "bench.bare-endpoint"
PRODUCER_PERF_TOPIC = "bench.producer-performance"
BENCH_TOPICS = (*RELAY_TOPICS, BARE_ENDPOINT_TOPIC, PRODUCER_PERF_TOPIC)
READY_TIMEOUT_S = 120.0


@dataclass
class BenchStack:
    state_dir: Path
    infra: Infrastructure
    env: dict[str, str]
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @classmethod
    def start(cls, state_dir: Path, *, partitions: int = 3) -> BenchStack:
        """Infrastructure and topics (the pipeline's and the bench's); services not yet."""
        ops = OpsOptions(jaeger_ports=JaegerPorts.free(), prometheus_port=None, scrape_targets={})
        infra = Infrastructure.start(
            state_dir,
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            mongodb_port=free_port(),
            topic_partitions=partitions,
            ops=ops,
        )
        try:
            asyncio.run(
                create_topics(
                    infra.kafka_bootstrap_servers, list(BENCH_TOPICS), partitions=partitions
                )
            )
            env = _service_environment(infra, state_dir)
        except BaseException:
            infra.stop()
            raise
        return cls(state_dir, infra, env)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def intake_url(self) -> str:
        return f"http://127.0.0.1:{self.env['INTAKE_HTTP_PORT']}"

    @property
    def desk_target(self) -> str:
        return f"127.0.0.1:{self.env['ROUTING_GRPC_PORT']}"

    @property
    def signing_key(self) -> Path:
        return Path(self.env["APPEALS_DEV_SIGNING_KEY_FILE"])

    def start_services(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for spec in PIPELINE:
                self.services[spec.name] = start_service(
                    spec, self.env, log_path=self.log_dir / f"{spec.name}.log"
                )
            wait_all_ready(list(self.services.values()), timeout=READY_TIMEOUT_S)
        except BaseException:
            self.stop_services()
            raise

    def stop_services(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        self.services.clear()

    def exited(self) -> list[str]:
        return [name for name, s in self.services.items() if s.process.poll() is not None]

    def stop(self) -> None:
        try:
            self.stop_services()
        finally:
            self.infra.stop()

    def process_leaders(self, extra: Callable[[], dict[str, int]]) -> Callable[[], dict[str, int]]:
        """name → pid of every process to account for: services, servers, and ``extra()``."""

        def leaders() -> dict[str, int]:
            found = {name: s.process.pid for name, s in self.services.items()}
            found.update(self.infra.pids())
            found.update(extra())
            return found

        return leaders


def _service_environment(infra: Infrastructure, state_dir: Path) -> dict[str, str]:
    env = service_environment(infra, base=os.environ)
    env.update(devkeys.service_environment(state_dir))
    intake_grpc = free_port()
    env.update({spec.port_variable: str(free_port()) for spec in PIPELINE})
    env.update(
        {
            "MONGODB_DATABASE": DATABASE,
            "INTAKE_GRPC_PORT": str(intake_grpc),
            "INTAKE_GRPC_TARGET": f"127.0.0.1:{intake_grpc}",
            "ROUTING_GRPC_PORT": str(free_port()),
            # Keep audit's checkpoint files and dev keys in the bench's state folder.
            "AUDIT_STATE_DIR": str(state_dir / "audit"),
        }
    )
    return env
