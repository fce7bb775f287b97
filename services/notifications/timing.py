"""When a message may go out, and when a failed one is tried again. Pure: the clock is passed in.

* Urgent kinds (a decision, a request for information) always go at once: the law wants the
  statement of reasons without undue delay, and a question holds the appeal up.
* Non-urgent kinds (received, in review, escalated, restored) respect the person's quiet hours in
  their time zone, when we know it (a country can span several zones, so none is guessed), and a
  daily limit of non-urgent messages counted over the person's local day (UTC without a time
  zone). A held message is deferred to when it may go, never dropped. (The count itself is a
  slot reserved in the store before sending: see the repository.)
* Progress news that waited (deferred or retried) is superseded once the decision reached the
  person: "your appeal is in review" after "here is the decision" only confuses.
* Transient failures are retried with exponential backoff and "equal jitter" (half the delay
  fixed, half random), so retries spread out yet never come back immediately; the provider's
  Retry-After is a floor. After the last attempt the failure counts as permanent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from services.notifications.model import NotificationKind

URGENT_KINDS: frozenset[NotificationKind] = frozenset({"decided", "info_requested"})
# Kinds that are stale once a decision was delivered for the same appeal.
SUPERSEDED_BY_DECISION: frozenset[NotificationKind] = frozenset(
    {"received", "in_review", "escalated", "info_requested"}
)
# Kinds that are said once per appeal even when their event repeats (a second claim after a
# release, a second escalation): the person already knows.
ONCE_PER_APPEAL: frozenset[NotificationKind] = frozenset({"received", "in_review", "escalated"})

HoldReason = Literal["quiet_hours", "daily_limit"]


@dataclass(frozen=True)
class QuietHours:
    """A nightly window in local time, e.g. 22:00-08:00 (may cross midnight)."""

    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        moment = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def next_end(self, local: datetime) -> datetime:
        """The first end of the window at or after ``local`` (same time zone)."""
        candidate = datetime.combine(local.date(), self.end, tzinfo=local.tzinfo)
        if candidate <= local:
            candidate += timedelta(days=1)
        return candidate


@dataclass(frozen=True)
class Limits:
    daily_limit: int
    quiet_hours: QuietHours | None


@dataclass(frozen=True)
class Hold:
    until: datetime
    reason: HoldReason


def day_start(now: datetime, zone: tzinfo | None) -> datetime:
    """Start of the person's current local day (UTC day without a zone), as an aware time."""
    local = now.astimezone(zone or UTC)
    return datetime.combine(local.date(), time(0), tzinfo=local.tzinfo)


def local_day(now: datetime, zone: tzinfo | None) -> date:
    """The person's current local date (UTC without a zone): what a daily limit counts over."""
    return now.astimezone(zone or UTC).date()


def quiet_hold(
    kind: NotificationKind, *, now: datetime, zone: tzinfo | None, limits: Limits
) -> Hold | None:
    """Until when a message of ``kind`` must wait for the person's quiet hours to end; None
    when it may go now (urgent, no time zone known, quiet hours off or not now)."""
    if kind in URGENT_KINDS or zone is None or limits.quiet_hours is None:
        return None
    quiet, local = limits.quiet_hours, now.astimezone(zone)
    if quiet.contains(local):
        return Hold(quiet.next_end(local).astimezone(UTC), "quiet_hours")
    return None


def daily_limit_hold(*, now: datetime, zone: tzinfo | None, limits: Limits) -> Hold:
    """Until when a message must wait once the person's daily limit is used up: their next
    local morning (midnight, or the end of quiet hours when midnight is inside them)."""
    tomorrow = day_start(now, zone) + timedelta(days=1)
    # Wall-clock midnight, then normalized: correct across daylight-saving changes.
    tomorrow = datetime.combine(tomorrow.date(), time(0), tzinfo=zone or UTC)
    quiet = limits.quiet_hours if zone is not None else None
    if quiet is not None and quiet.contains(tomorrow):
        tomorrow = quiet.next_end(tomorrow)
    return Hold(tomorrow.astimezone(UTC), "daily_limit")


@dataclass(frozen=True)
class Backoff:
    initial_s: float
    max_s: float
    # Attempts per channel, the first one included.
    max_attempts: int

    def delay_s(
        self, attempt: int, *, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_s, self.initial_s * 2.0 ** (attempt - 1))
        # Jitter, not cryptography: the module's generator is fine.
        jitter: float = (rng or random).uniform(0, ceiling / 2)
        return max(ceiling / 2 + jitter, retry_after_s or 0.0)

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
