"""Notifications' business metrics: declared here, exposed on notifications' /metrics.

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
from appeals_runtime.metrics import Kind, declare

NOTIFICATIONS_DELIVERED = declare(
    "appeals.notifications.delivered", Kind.COUNTER, "{notification}",
    "Notifications delivered to appellants, first deliveries only, by channel and kind",
    ("channel", "kind"),
)  # fmt: skip
NOTIFICATIONS_FAILED = declare(
    "appeals.notifications.failed", Kind.COUNTER, "{attempt}",
    "Failed delivery attempts, by channel, kind and whether retrying can help (permanent)",
    ("channel", "kind", "permanent"),
)  # fmt: skip
NOTIFICATIONS_DEAD_LETTERED = declare(
    "appeals.notifications.dead_lettered", Kind.COUNTER, "{attempt}",
    "Attempts that failed for good and went to the notifications DLQ",
    ("channel", "kind"),
)  # fmt: skip
NOTIFICATIONS_UNDELIVERABLE = declare(
    "appeals.notifications.undeliverable", Kind.COUNTER, "{notification}",
    "Notifications no configured channel could deliver",
    ("kind",),
)  # fmt: skip
NOTIFICATIONS_DEFERRED = declare(
    "appeals.notifications.deferred", Kind.COUNTER, "{notification}",
    "Non-urgent notifications held back by quiet hours or the daily limit",
    ("kind", "reason"),
)  # fmt: skip
NOTIFICATIONS_SUPERSEDED = declare(
    "appeals.notifications.superseded", Kind.COUNTER, "{notification}",
    "Waiting progress notifications dropped because the decision already arrived",
    ("kind",),
)  # fmt: skip
NOTIFICATIONS_FORGOTTEN = declare(
    "appeals.notifications.forgotten", Kind.COUNTER, "{notification}",
    "Notices not sent because the appellant had asked intake to forget them",
    ("kind",),
)  # fmt: skip
NOTIFICATION_RETRIES_WAITING = declare(
    "appeals.notifications.retry.waiting", Kind.GAUGE, "{notification}",
    "Retries held in memory by this process until they are due",
)  # fmt: skip
NOTIFICATION_RETRY_BACKLOG = declare(
    "appeals.notifications.retry.backlog", Kind.GAUGE, "{notification}",
    "Retry-topic records of this process's partitions not yet finished",
)  # fmt: skip

delivered = metrics.counter(NOTIFICATIONS_DELIVERED)
failed = metrics.counter(NOTIFICATIONS_FAILED)
dead_lettered = metrics.counter(NOTIFICATIONS_DEAD_LETTERED)
undeliverable = metrics.counter(NOTIFICATIONS_UNDELIVERABLE)
deferred = metrics.counter(NOTIFICATIONS_DEFERRED)
superseded = metrics.counter(NOTIFICATIONS_SUPERSEDED)
forgotten = metrics.counter(NOTIFICATIONS_FORGOTTEN)


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


metrics.gauge(NOTIFICATION_RETRIES_WAITING, _retry_waiting)
metrics.gauge(NOTIFICATION_RETRY_BACKLOG, _retry_backlog)
