"""Telling the appellant about their appeal: exactly one notification per (appeal, event).

The outbox record is the notification and its dedup key in one insert, written right after the
channel accepted the message. Whatever happens around it (a crash before the ``notified`` event
is published, a redelivery, a retry racing a redelivery) the next attempt finds the record, sends
nothing new and publishes the same ``notified`` event again, under an id derived from the event it
is about, which every consumer deduplicates.

One attempt walks the person's channel plan: a transient failure schedules the same channel on
the retry topic with backoff and returns (the lifecycle topic moves on); a permanent failure (or
the last retry failing) dead-letters that attempt, publishes ``notification_failed`` and goes on
to the next channel at once. Non-urgent messages may first be deferred by quiet hours or the
daily limit, through the same retry topic.

Where to reach the person (user id, contact) is read from intake at the moment of sending and
kept nowhere. Intake not answering is a transient error: the runner that called (the lifecycle
consumer or the retry scheduler) tries the same event again with backoff, so nothing is lost.
Failure reasons are stripped of the person's addresses before they go anywhere.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from appeals.v1 import events_pb2
from appeals_runtime import events, store, topics
from appeals_runtime.errors import InvalidMessage, NotFound
from appeals_runtime.intake_client import ParticularsSource
from appeals_runtime.kafka.producer import EventProducer
from services.notifications import metrics
from services.notifications.channels.base import PermanentFailure, TransientFailure
from services.notifications.channels.directory import ChannelDirectory, Route
from services.notifications.inbound import addressed
from services.notifications.locales import time_zone
from services.notifications.messages import MessageRenderer
from services.notifications.model import (
    Delivery,
    Notice,
    Outgoing,
    Recipient,
    RenderedMessage,
)
from services.notifications.policy import (
    ONCE_PER_APPEAL,
    SUPERSEDED_BY_DECISION,
    URGENT_KINDS,
    Backoff,
    Limits,
    day_start,
    hold,
)
from services.notifications.repository import NotificationsRepository
from services.notifications.retries import Origin, PendingAttempt, RetryQueue

log = logging.getLogger(__name__)

PRODUCER_NAME = "notifications"
# The "channel" of a notification_failed event when no channel could even be tried.
NO_CHANNEL = "none"

Clock = Callable[[], datetime]


class Notifier:
    def __init__(
        self,
        repository: NotificationsRepository,
        renderer: MessageRenderer,
        channels: ChannelDirectory,
        producer: EventProducer,
        retries: RetryQueue,
        particulars: ParticularsSource,
        *,
        limits: Limits,
        backoff: Backoff,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._repository = repository
        self._renderer = renderer
        self._channels = channels
        self._producer = producer
        self._retries = retries
        self._particulars = particulars
        self._limits = limits
        self._backoff = backoff
        self._clock = clock
        self._rng = rng

    async def remember(self, recipient: Recipient) -> None:
        """Keep who to tell and how; the first submitted event's profile is the one used."""
        await self._repository.save_recipient(recipient)

    async def notify(
        self,
        event: events_pb2.AppealEvent,
        notice: Notice,
        *,
        origin: Origin,
        pending: PendingAttempt | None = None,
    ) -> None:
        """Tell the appellant about ``notice`` (from ``event``); ``pending`` when this is a
        retry or a deferred message coming back from the retry topic."""
        profile = await self._repository.recipient(notice.appeal_id)
        if profile is None:
            # One appeal's events share a partition, so its submitted event was handled first;
            # if there is no profile, that event never arrived or was itself dead-lettered.
            raise InvalidMessage(
                f"no submitted event seen for appeal {notice.appeal_id}", field="appeal_id"
            )
        done = await self._repository.delivery(notice.appeal_id, notice.about_event_id)
        if done is not None:
            await self._announce(done)
            return
        if notice.kind in ONCE_PER_APPEAL and not await self._repository.claim_milestone(
            notice.appeal_id, notice.kind, notice.about_event_id
        ):
            log.info("already told", extra=_about(notice))
            return
        if (
            pending is not None
            and notice.kind in SUPERSEDED_BY_DECISION
            and await self._repository.decision_delivered(notice.appeal_id)
        ):
            metrics.superseded.add(1, {"kind": notice.kind})
            log.info("superseded by the decision; not sent", extra=_about(notice))
            return
        recipient = await self._addressed(profile)
        message = self._renderer.render(recipient, notice)
        if await self._deferred(event, notice, recipient, pending):
            return
        await self._deliver(event, notice, recipient, message, origin=origin, pending=pending)

    async def _addressed(self, profile: Recipient) -> Recipient:
        """The profile with the person's addresses from intake (ParticularsUnavailable, a
        transient error, when intake cannot answer now: the caller's runner retries)."""
        try:
            return addressed(profile, await self._particulars.get(profile.appeal_id))
        except NotFound as error:
            # The submitted event came from intake, which records an appeal before publishing
            # it: an appeal intake does not know is not ours to guess an address for.
            raise InvalidMessage(str(error), field="appeal_id") from error

    async def _deferred(
        self,
        event: events_pb2.AppealEvent,
        notice: Notice,
        recipient: Recipient,
        pending: PendingAttempt | None,
    ) -> bool:
        if notice.kind in URGENT_KINDS:
            return False
        now = self._clock()
        zone = time_zone(recipient.contact.time_zone)
        today = await self._repository.delivered_since(recipient.person_key, day_start(now, zone))
        held = hold(notice.kind, now=now, zone=zone, delivered_today=today, limits=self._limits)
        if held is None:
            return False
        await self._retries.schedule(
            event,
            self._retries.pending(
                channel=pending.channel if pending else "",
                attempt=pending.attempt if pending else 1,
                due_at=held.until,
                reason=held.reason,
            ),
        )
        metrics.deferred.add(1, {"kind": notice.kind, "reason": held.reason})
        log.info(
            "notification deferred",
            extra={**_about(notice), "reason": held.reason, "until": held.until.isoformat()},
        )
        return True

    async def _deliver(
        self,
        event: events_pb2.AppealEvent,
        notice: Notice,
        recipient: Recipient,
        message: RenderedMessage,
        *,
        origin: Origin,
        pending: PendingAttempt | None,
    ) -> None:
        plan = self._channels.plan(recipient)
        start, attempt = _resume(plan, pending)
        for route in plan[start:]:
            channel = route.channel.name
            try:
                delivery = await self._send(recipient, notice, message, route, attempt)
            except TransientFailure as failure:
                reason = recipient.redact(failure.reason)
                if not self._backoff.exhausted(attempt):
                    metrics.failed.add(1, _labels(channel, notice, permanent=False))
                    await self._retry_later(event, notice, channel, attempt, failure, reason)
                    return
                # The last attempt: from here on it counts (once) as a permanent failure.
                error_type = "RetriesExhausted"
                reason = f"gave up after {attempt} attempts: {reason}"
            except PermanentFailure as failure:
                error_type, reason = "PermanentFailure", recipient.redact(failure.reason)
            else:
                await self._record(delivery)
                return
            metrics.failed.add(1, _labels(channel, notice, permanent=True))
            await self._failed_for_good(event, notice, origin, channel, attempt, error_type, reason)
            attempt = 1
        metrics.undeliverable.add(1, {"kind": notice.kind})
        if not plan:
            reason = "no configured channel can reach the appellant"
            await self._failed_for_good(event, notice, origin, NO_CHANNEL, 0, "NoChannel", reason)
        log.error("appellant could not be notified on any channel", extra=_about(notice))

    async def _send(
        self,
        recipient: Recipient,
        notice: Notice,
        message: RenderedMessage,
        route: Route,
        attempt: int,
    ) -> Delivery:
        channel = route.channel
        delivery_id = events.derived_event_id(
            notice.appeal_id, "delivery", notice.about_event_id, channel.name
        )
        payload = channel.render(recipient, message, address=route.address, delivery_id=delivery_id)
        await channel.send(Outgoing(delivery_id, route.address, message, payload))
        # The record shows what was sent with the address named by its kind, not written down.
        recorded = channel.render(
            recipient, message, address=f"<{route.kind}>", delivery_id=delivery_id
        )
        return Delivery(
            appeal_id=recipient.appeal_id,
            about_event_id=notice.about_event_id,
            kind=notice.kind,
            template=message.template,
            channel=channel.name,
            platform=recipient.platform,
            locale=message.locale,
            recipient=route.kind,
            subject=message.subject,
            body=message.body,
            payload=recorded,
            delivered_at=store.stored_time(self._clock()),
            delivery_id=delivery_id,
            person=recipient.person_key,
            attempt=attempt,
        )

    async def _record(self, delivery: Delivery) -> None:
        if await self._repository.record_delivery(delivery):
            labels = {"channel": delivery.channel, "kind": delivery.kind}
            metrics.delivered.add(1, labels)
            # Failure series exist (at 0) once a channel delivered something: a failure rate of
            # 0 is then visible as such, and increase() counts the first failure.
            for permanent in ("false", "true"):
                metrics.failed.add(0, {**labels, "permanent": permanent})
            log.info(
                "appellant notified",
                extra={"appeal_id": delivery.appeal_id, "kind": delivery.kind,
                       "channel": delivery.channel, "locale": delivery.locale,
                       "attempt": delivery.attempt},
            )  # fmt: skip
            await self._announce(delivery)
            return
        # Another attempt (a redelivery racing a retry) recorded it first: announce that one.
        first = await self._repository.delivery(delivery.appeal_id, delivery.about_event_id)
        await self._announce(first or delivery)

    async def _retry_later(
        self,
        event: events_pb2.AppealEvent,
        notice: Notice,
        channel: str,
        attempt: int,
        failure: TransientFailure,
        reason: str,
    ) -> None:
        delay = self._backoff.delay_s(attempt, retry_after_s=failure.retry_after_s, rng=self._rng)
        due_at = self._clock() + timedelta(seconds=delay)
        await self._retries.schedule(
            event,
            self._retries.pending(
                channel=channel, attempt=attempt + 1, due_at=due_at, reason=reason
            ),
        )
        log.warning(
            "channel failed; retrying later",
            extra={**_about(notice), "channel": channel, "attempt": attempt,
                   "delay_s": round(delay, 3), "reason": reason},
        )  # fmt: skip

    async def _failed_for_good(
        self,
        event: events_pb2.AppealEvent,
        notice: Notice,
        origin: Origin,
        channel: str,
        attempt: int,
        error_type: str,
        reason: str,
    ) -> None:
        await self._retries.dead_letter(
            event,
            origin=origin,
            channel=channel,
            kind=notice.kind,
            attempts=attempt,
            error_type=error_type,
            reason=reason,
        )
        metrics.dead_lettered.add(1, {"channel": channel, "kind": notice.kind})
        failed = notification_failed_event(
            notice, channel=channel, attempt=attempt, reason=reason, occurred_at=self._clock()
        )
        await self._producer.publish(topics.APPEAL_LIFECYCLE, failed)
        log.error(
            "channel failed for good",
            extra={**_about(notice), "channel": channel, "attempt": attempt, "reason": reason},
        )

    async def _announce(self, delivery: Delivery) -> None:
        await self._producer.publish(topics.APPEAL_LIFECYCLE, notified_event(delivery))


def _resume(plan: list[Route], pending: PendingAttempt | None) -> tuple[int, int]:
    """Where in the plan a waiting notification picks up: its channel and attempt, or the start
    of the plan when it names none (a deferral) or one no longer configured."""
    if pending is None or not pending.channel:
        return 0, 1 if pending is None else pending.attempt
    for index, route in enumerate(plan):
        if route.channel.name == pending.channel:
            return index, pending.attempt
    return 0, 1


def _about(notice: Notice) -> dict[str, str]:
    return {"appeal_id": notice.appeal_id, "kind": notice.kind, "about": notice.about_event_id}


def _labels(channel: str, notice: Notice, *, permanent: bool) -> dict[str, str]:
    return {"channel": channel, "kind": notice.kind, "permanent": "true" if permanent else "false"}


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


def notification_failed_event(
    notice: Notice, *, channel: str, attempt: int, reason: str, occurred_at: datetime
) -> events_pb2.AppealEvent:
    """One ``notification_failed`` per (appeal, event, channel): a repeat has the same id."""
    return events.new_event(
        event_id=events.derived_event_id(
            notice.appeal_id, "notification_failed", notice.about_event_id, channel
        ),
        appeal_id=notice.appeal_id,
        causation_id=notice.about_event_id,
        producer=PRODUCER_NAME,
        occurred_at=occurred_at,
        notification_failed=events_pb2.NotificationFailed(
            about_event_id=notice.about_event_id,
            kind=notice.kind,
            channel=channel,
            reason=reason[:1000],
            permanent=True,
            attempt=attempt,
        ),
    )
