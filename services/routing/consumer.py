"""Kafka adapter of routing: submitted appeals become cases, appellants' answers send their
case back to its queue; restore results become events."""

from __future__ import annotations

from typing import Any

from appeals import topics
from appeals.events import EventHandling, event_type
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import Handler, InboundMessage
from services.routing.feed import CaseFeed
from services.routing.restores import RestoreResults
from services.routing.router import Router

# Routing acts on new appeals and on appellants' answers; every other event is its own (the
# desk's, the timers') or another service's news, and comes back here only because the topic is
# shared.
EVENTS = EventHandling(
    "routing",
    handled=frozenset({"submitted", "info_provided"}),
    ignored=frozenset(
        {"routed", "claimed", "released", "decided", "escalated", "transferred", "sla_warning",
         "sla_breached", "info_requested", "notified", "notification_failed", "restored",
         "particulars_erased"}
    ),
)  # fmt: skip


# Events routing ignores that never announce a case change: its consumer skips them without a
# span or a call of the handler. (The case feed follows the other events routing ignores: they
# announce cases' versions, routing's own included.)
NOT_CASE_CHANGES = frozenset({"notified", "notification_failed", "restored", "particulars_erased"})


def skips(message: InboundMessage[Any]) -> bool:
    """Whether the handler would do nothing with the record."""
    return (
        message.topic == topics.APPEAL_LIFECYCLE.name
        and h.CASE_VERSION not in message.headers
        and event_type(message.payload) in NOT_CASE_CHANGES
    )


def routing_handler(
    router: Router, restores: RestoreResults, feed: CaseFeed | None = None
) -> Handler:
    """``feed``: this instance's case feed, told of the case changes the consumer reads (the
    feed itself reads only the partitions the consumer does not own)."""

    async def handle(message: InboundMessage[Any]) -> None:
        if message.topic == topics.RESTORE_RESULTS.name:
            await restores.record(message.payload)
            return
        if feed is not None:
            feed.consider(message.key, message.headers)
        event = message.payload
        kind = event_type(event)
        if kind not in EVENTS.handled:
            return  # routing acts on new appeals and answers; its own events come back too
        if not event.appeal_id or not event.event_id:
            raise InvalidMessage("event_id and appeal_id are required", field="appeal_id")
        if kind == "submitted":
            await router.route_submitted(event)
        else:
            await router.information_provided(event)

    return handle
