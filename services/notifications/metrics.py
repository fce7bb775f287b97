"""The ops view of notifications, as instruments declared in :mod:`appeals_runtime.metrics`.

Counters (Prometheus adds ``_total``): ``appeals_notifications_delivered`` and
``appeals_notifications_failed`` by channel and kind (failed also by ``permanent``),
``appeals_notifications_dead_lettered`` by channel and kind, ``appeals_notifications_undeliverable``
(no channel left) and ``appeals_notifications_deferred`` (quiet hours, daily limit) and
``appeals_notifications_superseded`` and ``appeals_notifications_forgotten`` (the appellant
asked to be forgotten) by kind. Gauges: ``appeals_notifications_retry_waiting``
(retries held in this process until due) and ``appeals_notifications_retry_backlog`` (retry
records this process owns and has not finished: waiting, running or not yet read). The size of
the notifications DLQ is the runtime's ``appeals_kafka_dlq_records`` gauge.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from appeals_runtime import metrics
from appeals_runtime.kafka.consumer import ConsumerRunner

delivered = metrics.counter(metrics.NOTIFICATIONS_DELIVERED)
failed = metrics.counter(metrics.NOTIFICATIONS_FAILED)
dead_lettered = metrics.counter(metrics.NOTIFICATIONS_DEAD_LETTERED)
undeliverable = metrics.counter(metrics.NOTIFICATIONS_UNDELIVERABLE)
deferred = metrics.counter(metrics.NOTIFICATIONS_DEFERRED)
superseded = metrics.counter(metrics.NOTIFICATIONS_SUPERSEDED)
forgotten = metrics.counter(metrics.NOTIFICATIONS_FORGOTTEN)


@dataclass
class QueueGauges:
    """What the gauges read: this process's retry consumer, once it exists."""

    retries: ConsumerRunner | None = None


GAUGES = QueueGauges()


def _retry_waiting() -> Iterator[tuple[float, dict[str, str]]]:
    yield (GAUGES.retries.waiting if GAUGES.retries is not None else 0), {}


def _retry_backlog() -> Iterator[tuple[float, dict[str, str]]]:
    # Per partition: the records after the lowest one not finished (waiting, running, unread).
    runner = GAUGES.retries
    yield (sum(lag for lag, _ in runner.lag()) if runner is not None else 0), {}


metrics.gauge(metrics.NOTIFICATION_RETRIES_WAITING, _retry_waiting)
metrics.gauge(metrics.NOTIFICATION_RETRY_BACKLOG, _retry_backlog)
