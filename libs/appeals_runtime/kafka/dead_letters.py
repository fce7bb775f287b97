"""How many records sit in dead-letter topics: the ``appeals.kafka.dlq.records`` gauge.

Nobody consumes a DLQ automatically (an operator replays or discards its records), so its size is
its end offsets minus its start offsets. Each service probes the DLQs of the topics it consumes;
a DLQ shared by several consumer groups is reported by each of them with the same value, so
dashboards aggregate with ``max by (messaging_destination_name)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from appeals_runtime import metrics

log = logging.getLogger(__name__)

# Last known size per DLQ topic, refreshed by the probes of this process.
_sizes: dict[str, int] = {}


def _observe() -> Iterator[tuple[float, dict[str, str]]]:
    for topic, size in sorted(_sizes.items()):
        yield size, {"messaging.destination.name": topic}


metrics.gauge(metrics.DLQ_RECORDS, _observe)


async def records_in(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, topic: str) -> int:
    """Records currently in ``topic``: end minus beginning offsets over its partitions."""
    (described,) = await admin.describe_topics([topic])
    partitions = [TopicPartition(topic, p["partition"]) for p in described.get("partitions", [])]
    if not partitions:
        return 0
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    return sum(ends[tp] - starts[tp] for tp in partitions)


class DeadLetterProbe:
    """A component that refreshes the sizes of ``dlq_topics`` every ``refresh_s`` seconds."""

    def __init__(
        self,
        bootstrap_servers: str,
        dlq_topics: Sequence[str],
        *,
        refresh_s: float,
        client_id: str,
    ) -> None:
        self.name = f"{client_id}-dlq-probe"
        self._bootstrap_servers = bootstrap_servers
        self._topics = tuple(dlq_topics)
        self._refresh_s = refresh_s
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap_servers, client_id=self.name)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id=self.name,
        )
        await admin.start()
        await consumer.start()
        try:
            while not self._stopping.is_set():
                for topic in self._topics:
                    try:
                        _sizes[topic] = await records_in(admin, consumer, topic)
                    except Exception as error:  # a metric never takes the service down
                        log.warning(
                            "DLQ size unknown", extra={"topic": topic, "error": repr(error)}
                        )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._refresh_s)
        finally:
            await consumer.stop()
            await admin.close()

    async def stop(self) -> None:
        self._stopping.set()
