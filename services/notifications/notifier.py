"""Telling the appellant about their appeal: exactly one notification per (appeal, event).

The outbox record is the notification and its dedup key in one insert. Whatever happens after it
(a crash before the ``notified`` event is published, a redelivery of the same event) the next
attempt finds the record, sends nothing new and publishes the same ``notified`` event again,
under an id derived from the event it is about, which every consumer deduplicates.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from opentelemetry import metrics

from appeals.v1 import events_pb2
from appeals_runtime import events, topics
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.kafka.producer import EventProducer
from services.notifications.channels import ChannelDirectory
from services.notifications.messages import MessageRenderer
from services.notifications.model import (
    Decision,
    Delivery,
    NotificationKind,
    Recipient,
    RenderedMessage,
)
from services.notifications.repository import NotificationsRepository

log = logging.getLogger(__name__)

PRODUCER_NAME = "notifications"

_meter = metrics.get_meter(__name__)
_delivered = _meter.create_counter(
    "appeals.notifications.delivered",
    description="Notifications delivered to appellants, first deliveries only",
)


class Notifier:
    def __init__(
        self,
        repository: NotificationsRepository,
        renderer: MessageRenderer,
        channels: ChannelDirectory,
        producer: EventProducer,
    ) -> None:
        self._repository = repository
        self._renderer = renderer
        self._channels = channels
        self._producer = producer

    async def appeal_submitted(self, recipient: Recipient) -> None:
        """Keep who to tell and how, then tell them the appeal was received."""
        about_event_id = recipient.submitted_event_id
        if not await self._repository.save_recipient(recipient):
            # A redelivery: the profile stored the first time is the one every message uses.
            recipient = await self._repository.recipient(recipient.appeal_id) or recipient
        await self._notify(
            recipient,
            about_event_id=about_event_id,
            kind="received",
            message=self._renderer.received(recipient),
        )

    async def appeal_decided(self, decision: Decision) -> None:
        """Tell the appellant the outcome, with the statement of reasons (DSA Art. 17, 20)."""
        recipient = await self._repository.recipient(decision.appeal_id)
        if recipient is None:
            # One appeal's events share a partition, so its submitted event was handled first;
            # if there is no profile, that event never arrived or was itself dead-lettered.
            raise InvalidMessage(
                f"no submitted event seen for appeal {decision.appeal_id}", field="appeal_id"
            )
        policy = decision.policy_cited or recipient.decision_policy
        if not policy:
            raise InvalidMessage(
                "the decision cites no policy and the original decision names none",
                field="decided.policy_cited",
            )
        await self._notify(
            recipient,
            about_event_id=decision.event_id,
            kind="decided",
            message=self._renderer.decided(recipient, decision, policy=policy),
        )

    async def _notify(
        self,
        recipient: Recipient,
        *,
        about_event_id: str,
        kind: NotificationKind,
        message: RenderedMessage,
    ) -> None:
        channel = self._channels.for_platform(recipient.platform)
        delivery = Delivery(
            appeal_id=recipient.appeal_id,
            about_event_id=about_event_id,
            kind=kind,
            template=message.template,
            channel=channel.name,
            platform=recipient.platform,
            locale=message.locale,
            recipient=recipient.user_id,
            subject=message.subject,
            body=message.body,
            payload=channel.render(recipient, message),
            delivered_at=_now(),
        )
        if await channel.send(delivery):
            _delivered.add(1, {"channel": channel.name, "kind": kind})
            log.info(
                "appellant notified",
                extra={"appeal_id": recipient.appeal_id, "kind": kind, "channel": channel.name,
                       "locale": message.locale},
            )  # fmt: skip
        else:
            # Delivered by an earlier attempt: announce what was sent then, not this re-render.
            delivery = (
                await self._repository.delivery(recipient.appeal_id, about_event_id) or delivery
            )
        await self._producer.publish(topics.APPEAL_LIFECYCLE, notified_event(delivery))


def notified_event(delivery: Delivery) -> events_pb2.AppealEvent:
    """The ``notified`` event of a delivery; the same delivery always yields the same event."""
    return events.new_event(
        event_id=events.derived_event_id(delivery.appeal_id, "notified", delivery.about_event_id),
        appeal_id=delivery.appeal_id,
        causation_id=delivery.about_event_id,
        producer=PRODUCER_NAME,
        occurred_at=delivery.delivered_at,
        notified=events_pb2.AppellantNotified(
            about_event_id=delivery.about_event_id,
            kind=delivery.kind,
            channel=delivery.channel,
            locale=delivery.locale,
        ),
    )


def _now() -> datetime:
    # The store keeps milliseconds; truncating here makes a republished event equal the first.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
