"""The lifecycle consumer: a thin adapter from events to the notifier.

The runner has decoded the event; this checks it against the contract and dispatches by type.
"""

from __future__ import annotations

from appeals.v1 import events_pb2
from appeals_runtime import events, topics
from appeals_runtime.kafka.consumer import ConsumerRunner, Handler, InboundMessage
from appeals_runtime.service import ServiceContext
from services.notifications.config import CONSUMER_GROUP
from services.notifications.inbound import decision_from_decided, recipient_from_submitted
from services.notifications.notifier import Notifier


def lifecycle_handler(notifier: Notifier) -> Handler:
    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        event = message.payload
        match events.event_type(event):
            case "submitted":
                await notifier.appeal_submitted(recipient_from_submitted(event))
            case "decided":
                await notifier.appeal_decided(decision_from_decided(event))
            case _:
                # Routed, claimed, released and notified events tell the appellant nothing new.
                # A payload this build does not know (a newer contract) reads as "unknown" and
                # is skipped too, rather than dead-lettered for being from the future.
                return

    return handle


def lifecycle_consumer(ctx: ServiceContext, notifier: Notifier) -> ConsumerRunner:
    return ConsumerRunner(
        name="notifications-lifecycle",
        bootstrap_servers=ctx.settings.kafka_bootstrap_servers,
        group_id=CONSUMER_GROUP,
        topics=[topics.APPEAL_LIFECYCLE],
        handler=lifecycle_handler(notifier),
        producer=ctx.producer,
    )
