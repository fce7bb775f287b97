"""The consumers: thin adapters from the lifecycle topic and the retry topic to the notifier.

Both are the runtime's consumer runner. The runner has decoded the event; this checks it against
the contract and hands it on. The retry topic's records are delayed redeliveries: the runner
holds each until the due time its headers carry (quiet hours, a daily limit, a channel's
backoff), so a retry due in five seconds never waits behind one due tomorrow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from appeals import topics
from appeals.v1 import events_pb2
from appeals_runtime.kafka.consumer import ConsumerRunner, Handler, InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.notifications.inbound import EVENTS, notice_from, recipient_from_submitted
from services.notifications.metrics import GAUGES
from services.notifications.retries import Origin, PendingAttempt
from services.notifications.service import Notifier

# A retry handed the notifier: the event, and the attempt its headers describe.
RetryHandler = Callable[[InboundMessage[events_pb2.AppealEvent], PendingAttempt], Awaitable[None]]


def lifecycle_handler(
    notifier: Notifier, *, group: str, on_erased: Callable[[str], None] | None = None
) -> Handler:
    """``on_erased(appeal_id)``: the appellant of that appeal was forgotten at intake (drop what
    is held of their addressing; intake answers "erased" from then on)."""

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        event = message.payload
        if event.HasField("particulars_erased") and on_erased is not None:
            on_erased(event.appeal_id)
        # A profile this very event stored: its notice reads nothing back (nothing was told yet).
        stored = None
        if event.HasField("submitted"):
            recipient = recipient_from_submitted(event)
            if await notifier.remember(recipient):
                stored = recipient
        notice = notice_from(event)
        if notice is not None:
            await notifier.notify(event, notice, origin=Origin.of(message, group), stored=stored)

    return handle


def retry_handler(notifier: Notifier, *, group: str) -> RetryHandler:
    async def handle(
        message: InboundMessage[events_pb2.AppealEvent], pending: PendingAttempt
    ) -> None:
        notice = notice_from(message.payload)
        if notice is not None:
            await notifier.notify(
                message.payload, notice, origin=Origin.of(message, group), pending=pending
            )

    return handle


def lifecycle_consumer(
    notifier: Notifier,
    *,
    bootstrap_servers: str,
    group: str,
    producer: EventProducer,
    start_from: str = "earliest",
    on_erased: Callable[[str], None] | None = None,
) -> ConsumerRunner:
    return ConsumerRunner(
        name="notifications-lifecycle",
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        topics=[topics.APPEAL_LIFECYCLE],
        handler=lifecycle_handler(notifier, group=group, on_erased=on_erased),
        producer=producer,
        skip=lambda message: EVENTS.ignores(message.payload),
        auto_offset_reset=start_from,
    )


def retry_consumer(
    notifier: Notifier,
    *,
    bootstrap_servers: str,
    group: str,
    owner_group: str,
    producer: EventProducer,
    clock: Callable[[], datetime],
    tick_s: float,
    concurrency: int,
    max_waiting: int,
) -> ConsumerRunner:
    """The retry topic's consumer: each record held until due (at most ``max_waiting`` held,
    then reading pauses), ``concurrency`` running at once, never two of one appeal. A record
    scheduled by another deployment's lifecycle group (not ``owner_group``) is skipped at once:
    that deployment runs it."""
    handle = retry_handler(notifier, group=group)

    def due_at(message: InboundMessage[events_pb2.AppealEvent]) -> datetime | None:
        pending = PendingAttempt.from_headers(message.headers)  # InvalidMessage: to the DLQ
        return pending.due_at if pending.group == owner_group else None

    async def handle_ours(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        pending = PendingAttempt.from_headers(message.headers)
        if pending.group == owner_group:
            await handle(message, pending)

    runner = ConsumerRunner(
        name="notifications-retries",
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        topics=[topics.NOTIFICATION_RETRIES],
        handler=handle_ours,
        producer=producer,
        due_at=due_at,
        clock=clock,
        tick_s=tick_s,
        max_running=concurrency,
        max_in_flight=max_waiting,
    )
    GAUGES.retries = runner
    return runner
