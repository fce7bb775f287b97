"""Kafka's own ``ProducerPerformance`` (``org.apache.kafka.tools``, from the jars ``make kafka``
fetches) against the bench's broker: the broker's raw rate for records of about an event's
size with ``acks=all``, for reference next to the Python limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from appeals_devstack.kafka import JAVA_OPTS
from appeals_devstack.paths import DEPLOY_LOCAL

TOOL = "org.apache.kafka.tools.ProducerPerformance"
# "100000 records sent, 45045.0 records/sec (21.99 MB/sec), 512.3 ms avg latency,
#  910.0 ms max latency, 498 ms 50th, 850 ms 95th, 900 ms 99th, 910 ms 99.9th."
_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency"
    r"(?:, (?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th)?"
)


@dataclass(frozen=True)
class ProducerPerformance:
    records: int
    records_per_s: float
    mb_per_s: float
    avg_latency_ms: float
    max_latency_ms: float
    p99_latency_ms: float | None


def command(libs: Path, bootstrap: str, topic: str, *, records: int, size: int) -> list[str]:
    return [
        "java",
        *JAVA_OPTS,
        f"-Dlog4j2.configurationFile={DEPLOY_LOCAL / 'log4j2.xml'}",
        "-cp",
        f"{libs}/*",
        TOOL,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
    ]


def parse(output: str) -> ProducerPerformance:
    """The tool's final summary line (the last line that matches)."""
    found = None
    for line in output.splitlines():
        match = _SUMMARY.search(line)
        if match:
            found = match
    if found is None:
        raise ValueError(f"no ProducerPerformance summary in: {output[-500:]!r}")
    p99 = found.group("p99")
    return ProducerPerformance(
        records=int(found.group("records")),
        records_per_s=float(found.group("rate")),
        mb_per_s=float(found.group("mb")),
        avg_latency_ms=float(found.group("avg")),
        max_latency_ms=float(found.group("max")),
        p99_latency_ms=float(p99) if p99 is not None else None,
    )
