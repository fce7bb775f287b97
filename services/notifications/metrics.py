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

delivered = metrics.counter(metrics.NOTIFICATIONS_DELIVERED)
failed = metrics.counter(metrics.NOTIFICATIONS_FAILED)
dead_lettered = metrics.counter(metrics.NOTIFICATIONS_DEAD_LETTERED)
undeliverable = metrics.counter(metrics.NOTIFICATIONS_UNDELIVERABLE)
deferred = metrics.counter(metrics.NOTIFICATIONS_DEFERRED)
superseded = metrics.counter(metrics.NOTIFICATIONS_SUPERSEDED)
forgotten = metrics.counter(metrics.NOTIFICATIONS_FORGOTTEN)


@dataclass
class QueueGauges:
    """Last known sizes, updated by the retry scheduler."""

    retry_waiting: int = 0
    retry_backlog: int = 0


GAUGES = QueueGauges()


def _value(read: str) -> metrics.Observe:
    def observe() -> Iterator[tuple[float, dict[str, str]]]:
        yield getattr(GAUGES, read), {}

    return observe


metrics.gauge(metrics.NOTIFICATION_RETRIES_WAITING, _value("retry_waiting"))
metrics.gauge(metrics.NOTIFICATION_RETRY_BACKLOG, _value("retry_backlog"))
