"""The ops view of notifications, as OpenTelemetry instruments (exposed on ``/metrics``).

Counters (Prometheus adds ``_total``): ``appeals_notifications_delivered`` and
``appeals_notifications_failed`` by channel and kind (failed also by ``permanent``),
``appeals_notifications_dead_lettered`` by channel and kind, ``appeals_notifications_undeliverable``
(no channel left) and ``appeals_notifications_deferred`` (quiet hours, daily limit) and
``appeals_notifications_superseded`` by kind. Gauges: ``appeals_notifications_retry_waiting``
(retries held in this process until due), ``appeals_notifications_retry_backlog`` (retry records
this process owns and has not finished: waiting, running or not yet read) and
``appeals_notifications_dlq_size`` (records in the notifications DLQ).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from appeals_runtime import topics

log = logging.getLogger(__name__)
_meter = metrics.get_meter("services.notifications")

delivered = _meter.create_counter(
    "appeals.notifications.delivered",
    description="Notifications delivered to appellants, first deliveries only",
)
failed = _meter.create_counter(
    "appeals.notifications.failed",
    description="Failed delivery attempts, by channel, kind and whether retrying can help",
)
dead_lettered = _meter.create_counter(
    "appeals.notifications.dead_lettered",
    description="Attempts that failed for good and went to the notifications DLQ",
)
undeliverable = _meter.create_counter(
    "appeals.notifications.undeliverable",
    description="Notifications no configured channel could deliver",
)
deferred = _meter.create_counter(
    "appeals.notifications.deferred",
    description="Non-urgent notifications held back by quiet hours or the daily limit",
)
superseded = _meter.create_counter(
    "appeals.notifications.superseded",
    description="Waiting progress notifications dropped because the decision already arrived",
)


@dataclass
class QueueGauges:
    """Last known sizes, updated by the retry scheduler and the DLQ probe."""

    retry_waiting: int = 0
    retry_backlog: int = 0
    dlq_size: int = 0


GAUGES = QueueGauges()


def _observe(value: int) -> Iterable[Observation]:
    return [Observation(value)]


_meter.create_observable_gauge(
    "appeals.notifications.retry.waiting",
    callbacks=[lambda _options: _observe(GAUGES.retry_waiting)],
    description="Retries held in memory by this process until they are due",
)
_meter.create_observable_gauge(
    "appeals.notifications.retry.backlog",
    callbacks=[lambda _options: _observe(GAUGES.retry_backlog)],
    description="Retry-topic records of this process's partitions not yet finished",
)


def _dlq_size(_options: CallbackOptions) -> Iterable[Observation]:
    return _observe(GAUGES.dlq_size)


_meter.create_observable_gauge(
    "appeals.notifications.dlq.size",
    callbacks=[_dlq_size],
    description="Records in the notifications DLQ (appeals.notifications.retry.v1.dlq)",
)


class DeadLetterProbe:
    """Refreshes the DLQ size from the broker's offsets every ``refresh_s`` (a component)."""

    name = "notifications-dlq-probe"

    def __init__(self, bootstrap_servers: str, *, refresh_s: float) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._refresh_s = refresh_s
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap_servers, client_id="notifications-dlq-probe"
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id="notifications-dlq-probe",
        )
        await admin.start()
        await consumer.start()
        try:
            while not self._stopping.is_set():
                try:
                    GAUGES.dlq_size = await dlq_size(admin, consumer)
                except Exception as error:  # a metric never takes the service down
                    log.warning("DLQ size unknown", extra={"error": repr(error)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._refresh_s)
        finally:
            await consumer.stop()
            await admin.close()

    async def stop(self) -> None:
        self._stopping.set()


async def dlq_size(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> int:
    """Records currently in the notifications DLQ: end minus beginning offsets."""
    name = topics.NOTIFICATION_RETRIES.dlq
    (described,) = await admin.describe_topics([name])
    partitions = [TopicPartition(name, p["partition"]) for p in described.get("partitions", [])]
    if not partitions:
        return 0
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    return sum(ends[tp] - starts[tp] for tp in partitions)
