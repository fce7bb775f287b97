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

Handlers call this concurrently for different appeals, and the lifecycle consumer and the retry
scheduler may work on the same appeal at once. The notifier keeps nothing between calls; what
two calls could race on (a milestone, a daily slot, the outbox record, the appeal's list) is an
insert under a unique ``_id``, which exactly one of them wins (see the repository).

Where to reach the person (user id, contact) is read from intake at the moment of sending and
kept nowhere. Intake not answering is a transient error: the runner that called (the lifecycle
consumer or the retry scheduler) tries the same event again with backoff, so nothing is lost.
Failure reasons are stripped of the person's addresses before they go anywhere.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from appeals import events, topics
from appeals.v1 import events_pb2
from appeals_runtime import store
from appeals_runtime.errors import InvalidMessage, NotFound
from appeals_runtime.intake_client import ParticularsSource
from appeals_runtime.kafka.producer import EventProducer
from services.notifications import metrics
from services.notifications.channels.base import PermanentFailure, TransientFailure
from services.notifications.channels.directory import ChannelDirectory, Route
from services.notifications.concurrently import both
from services.notifications.inbound import addressed
from services.notifications.locales import time_zone
from services.notifications.messages import MessageRenderer
from services.notifications.model import (
    Delivery,
    Notice,
    Outgoing,
    Recipient,
    RenderedMessage,
    Told,
)
from services.notifications.repository import NotificationsRepository
from services.notifications.retries import Origin, PendingAttempt, RetryQueue
from services.notifications.timing import (
    ONCE_PER_APPEAL,
    SUPERSEDED_BY_DECISION,
    URGENT_KINDS,
    Backoff,
    Hold,
    Limits,
    daily_limit_hold,
    local_day,
    quiet_hold,
)

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

    async def remember(self, recipient: Recipient) -> bool:
        """Keep who to tell and how; the first submitted event's profile is the one used. True
        when this event stored it (then nothing can have been told about the appeal yet)."""
        return await self._repository.save_recipient(recipient)

    async def notify(
        self,
        event: events_pb2.AppealEvent,
        notice: Notice,
        *,
        origin: Origin,
        pending: PendingAttempt | None = None,
        stored: Recipient | None = None,
    ) -> None:
        """Tell the appellant about ``notice`` (from ``event``); ``pending`` when this is a
        retry or a deferred message coming back from the retry topic; ``stored`` when this very
        event just stored the appeal's profile (:meth:`remember`): nothing to read back then.

        Store round trips, all by _id: the profile, the notice's outbox record and what the
        person was told so far, read side by side (none after ``remember``); for a
        once-per-appeal kind told for the first time, the milestone claim beside intake's
        answer; for a non-urgent kind, the daily slot (a read, then an insert; for the appeal's
        first notice, the person's first slot of the day tried at once); after the send,
        the outbox record and the appeal's list, written side by side.
        """
        if stored is not None:
            profile, told = stored, Told({"received": stored.submitted_event_id})
        else:
            found, done, told = await self._repository.appeal(
                notice.appeal_id, notice.about_event_id
            )
            if found is None:
                # One appeal's events share a partition, so its submitted event was handled
                # first; if there is no profile, that event never arrived or was dead-lettered.
                raise InvalidMessage(
                    f"no submitted event seen for appeal {notice.appeal_id}", field="appeal_id"
                )
            if done is not None:
                # Told before (a redelivery, a restart, a retry racing a redelivery): complete
                # what a crash may have left unwritten beside it, and announce it again.
                await self._repository.note_delivered(done, told)
                await self._announce(done)
                return
            profile = found
        holder = told.firsts.get(notice.kind)
        if notice.kind in ONCE_PER_APPEAL and holder not in (None, notice.about_event_id):
            log.info("already told", extra=_about(notice))
            return
        stale = notice.kind in SUPERSEDED_BY_DECISION and told.decision_delivered
        if pending is not None and stale:
            metrics.superseded.add(1, {"kind": notice.kind})
            log.info("superseded by the decision; not sent", extra=_about(notice))
            return
        if notice.kind in ONCE_PER_APPEAL and holder is None:
            # The first event of its kind so far: claim it before sending (the first one wins).
            claimed, addressed_to = await both(
                self._repository.claim_milestone(
                    notice.appeal_id, notice.kind, notice.about_event_id
                ),
                self._addressed(profile),
            )
            if not claimed:
                log.info("already told", extra=_about(notice))
                return
        else:
            addressed_to = await self._addressed(profile)
        if addressed_to is None:
            # They asked intake to forget them: there is no one to tell, and nothing to retry.
            metrics.forgotten.add(1, {"kind": notice.kind})
            log.info("not told: the appellant was forgotten", extra=_about(notice))
            return
        recipient = addressed_to
        # A notice whose event just stored the profile is the appeal's first: it holds no slot.
        allowed = await self._hold_or_reserve(notice, recipient, first=stored is not None)
        if isinstance(allowed, Hold):
            await self._defer(event, notice, pending, allowed)
            return
        message = self._renderer.render(recipient, notice)
        await self._deliver(
            event, notice, recipient, message, told, origin=origin, pending=pending, slot=allowed
        )

    async def _addressed(self, profile: Recipient) -> Recipient | None:
        """The profile with the person's addresses from intake, None when intake erased them
        at the person's request (ParticularsUnavailable, a transient error, when intake cannot
        answer now: the caller's runner retries)."""
        try:
            particulars = await self._particulars.get(profile.appeal_id)
        except NotFound as error:
            # The submitted event came from intake, which records an appeal before publishing
            # it: an appeal intake does not know is not ours to guess an address for.
            raise InvalidMessage(str(error), field="appeal_id") from error
        return None if particulars.erased else addressed(profile, particulars)

    async def _hold_or_reserve(
        self, notice: Notice, recipient: Recipient, *, first: bool
    ) -> Hold | _Slot | None:
        """Why and until when a non-urgent message must wait, or the slot of the person's day
        it took; None for urgent kinds, which neither wait nor count.

        The slot is taken in the store before sending: each slot is a document that only one
        insert can create, so concurrent handlers (and instances) never pass the limit
        together; a redelivered or retried notification finds the slot it already holds.
        """
        if notice.kind in URGENT_KINDS:
            return None
        now = self._clock()
        zone = time_zone(recipient.contact.time_zone)
        quiet = quiet_hold(notice.kind, now=now, zone=zone, limits=self._limits)
        if quiet is not None:
            return quiet
        slot = await self._repository.reserve_daily_slot(
            recipient.person_key,
            local_day(now, zone),
            appeal_id=notice.appeal_id,
            about_event_id=notice.about_event_id,
            limit=self._limits.daily_limit,
            holds_none=first,
        )
        if slot is not None:
            return _Slot(slot)
        return daily_limit_hold(now=now, zone=zone, limits=self._limits)

    async def _defer(
        self,
        event: events_pb2.AppealEvent,
        notice: Notice,
        pending: PendingAttempt | None,
        held: Hold,
    ) -> None:
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

    async def _deliver(
        self,
        event: events_pb2.AppealEvent,
        notice: Notice,
        recipient: Recipient,
        message: RenderedMessage,
        told: Told,
        *,
        origin: Origin,
        pending: PendingAttempt | None,
        slot: _Slot | None,
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
                await self._record(delivery, told)
                return
            metrics.failed.add(1, _labels(channel, notice, permanent=True))
            await self._failed_for_good(event, notice, origin, channel, attempt, error_type, reason)
            attempt = 1
        metrics.undeliverable.add(1, {"kind": notice.kind})
        if slot is not None:
            # Nothing reached the person: the slot is free for another message today.
            await self._repository.release_daily_slot(
                slot.id, appeal_id=notice.appeal_id, about_event_id=notice.about_event_id
            )
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

    async def _record(self, delivery: Delivery, told: Told) -> None:
        if await self._repository.record_delivery(delivery, told):
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


@dataclass(frozen=True)
class _Slot:
    """The slot of a person's day that a non-urgent notification took (its store id)."""

    id: str


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
