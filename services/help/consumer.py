"""Live help's consumer of the lifecycle topic: a thin adapter from ``particulars_erased`` to
:meth:`services.help.erasure.ChatErasures.appeal_erased`.

The runtime's consumer runner decodes each event (an undecodable one goes to the DLQ), commits
only after it was handled and retries a store that is unavailable. Every other kind of event is
ignored without touching the store: the group reads the whole topic, and almost all of it is
not for live help.
"""

from __future__ import annotations

from appeals import topics
from appeals.v1 import events_pb2
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.kafka.consumer import ConsumerRunner, Handler, InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.help.erasure import ChatErasures


def lifecycle_handler(erasures: ChatErasures) -> Handler:
    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        event = message.payload
        if not event.HasField("particulars_erased"):
            return
        if not event.appeal_id:
            raise InvalidMessage("particulars_erased names no appeal", field="appeal_id")
        await erasures.appeal_erased(event.appeal_id)

    return handle


def lifecycle_consumer(
    erasures: ChatErasures,
    *,
    bootstrap_servers: str,
    group: str,
    producer: EventProducer,
) -> ConsumerRunner:
    return ConsumerRunner(
        name="help-lifecycle",
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        topics=[topics.APPEAL_LIFECYCLE],
        handler=lifecycle_handler(erasures),
        producer=producer,
    )
