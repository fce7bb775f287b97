"""Live help's consumer of the lifecycle topic: a thin adapter from two kinds of event to the use
cases that act on them:

* ``particulars_erased`` → :meth:`services.help.erasure.ChatErasures.appeal_erased` (forget the
  person of the chats attached to that appeal);
* ``decided`` → :meth:`services.help.chats.Chats.announce_decision` (say the outcome in those
  chats).

The runtime's consumer runner decodes each event (an undecodable one goes to the DLQ, and so does
one of these two kinds that lacks what acting on it needs), commits only after it was handled
and retries a store that is unavailable. Every other kind of event is ignored without touching
the store: the group reads the whole topic, and almost all of it is not for live help.
"""

from __future__ import annotations

from appeals import topics, vocabulary
from appeals.v1 import events_pb2
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.kafka.consumer import ConsumerRunner, Handler, InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.help.chats import Chats
from services.help.erasure import ChatErasures


def lifecycle_handler(erasures: ChatErasures, chats: Chats) -> Handler:
    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        event = message.payload
        kind = event.WhichOneof("payload")
        if kind not in ("particulars_erased", "decided"):
            return
        if not event.appeal_id:
            raise InvalidMessage(f"{kind} names no appeal", field="appeal_id")
        if kind == "particulars_erased":
            await erasures.appeal_erased(event.appeal_id)
            return
        outcome = vocabulary.outcome_name(event.decided.outcome)
        if outcome not in vocabulary.OUTCOMES:
            raise InvalidMessage("decided names no outcome", field="decided.outcome")
        if not event.event_id:
            # The chat's message is stored once per event id: without one, once is not known.
            raise InvalidMessage("decided has no event id", field="event_id")
        await chats.announce_decision(event.appeal_id, event.event_id, outcome)

    return handle


def lifecycle_consumer(
    erasures: ChatErasures,
    chats: Chats,
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
        handler=lifecycle_handler(erasures, chats),
        producer=producer,
    )
