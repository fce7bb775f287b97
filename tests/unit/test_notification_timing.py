"""When messages may go out and when failures are retried: urgency, quiet hours in the person's
time zone, daily limits, backoff with jitter. Pure, with the clock passed in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notifications.model import NotificationKind
from services.notifications.timing import (
    ONCE_PER_APPEAL,
    SUPERSEDED_BY_DECISION,
    URGENT_KINDS,
    Backoff,
    Hold,
    Limits,
    QuietHours,
    daily_limit_hold,
    day_start,
    local_day,
    quiet_hold,
)

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = QuietHours(time(22), time(8))
LIMITS = Limits(daily_limit=3, quiet_hours=NIGHT)


def at(hour: int, minute: int = 0, *, day: int = 4, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=zone).astimezone(UTC)


def hold(
    kind: NotificationKind,
    *,
    now: datetime,
    zone: ZoneInfo | None,
    delivered_today: int,
    limits: Limits,
) -> Hold | None:
    """What the notifier decides: quiet hours first, then the daily limit (whose count the
    store keeps, as a reservation; here a number) for non-urgent kinds only."""
    quiet = quiet_hold(kind, now=now, zone=zone, limits=limits)
    if quiet is not None or kind in URGENT_KINDS or delivered_today < limits.daily_limit:
        return quiet
    return daily_limit_hold(now=now, zone=zone, limits=limits)


def test_decisions_and_questions_are_urgent_and_progress_news_is_not() -> None:
    assert {"decided", "info_requested"} == URGENT_KINDS
    assert "decided" not in SUPERSEDED_BY_DECISION and "restored" not in SUPERSEDED_BY_DECISION
    assert {"received", "in_review", "escalated"} == ONCE_PER_APPEAL


@pytest.mark.parametrize("kind", ["decided", "info_requested"])
def test_urgent_kinds_go_at_night_and_over_the_limit(kind: NotificationKind) -> None:
    assert hold(kind, now=at(3), zone=BERLIN, delivered_today=99, limits=LIMITS) is None


def test_quiet_hours_defer_to_their_end_in_the_persons_time_zone() -> None:
    # 23:30 in Berlin: wait until 08:00 Berlin time the next morning.
    held = hold("in_review", now=at(23, 30), zone=BERLIN, delivered_today=0, limits=LIMITS)
    assert held == Hold(at(8, day=5), "quiet_hours")
    # 03:00: the same morning.
    early = hold("received", now=at(3), zone=BERLIN, delivered_today=0, limits=LIMITS)
    assert early == Hold(at(8), "quiet_hours")
    # 08:00 sharp is no longer quiet; 21:59 not yet.
    assert hold("received", now=at(8), zone=BERLIN, delivered_today=0, limits=LIMITS) is None
    assert hold("restored", now=at(21, 59), zone=BERLIN, delivered_today=0, limits=LIMITS) is None


def test_the_same_utc_moment_is_quiet_for_one_person_and_not_for_another() -> None:
    moment = datetime(2025, 3, 4, 21, 30, tzinfo=UTC)
    tokyo, sao_paulo = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/Sao_Paulo")
    # 18:30 in São Paulo: fine. 22:30 in Berlin, 06:30 in Tokyo: each waits for its own 08:00.
    assert hold("escalated", now=moment, zone=sao_paulo, delivered_today=0, limits=LIMITS) is None
    berlin = hold("escalated", now=moment, zone=BERLIN, delivered_today=0, limits=LIMITS)
    japan = hold("escalated", now=moment, zone=tokyo, delivered_today=0, limits=LIMITS)
    assert berlin is not None and berlin.until == datetime(2025, 3, 5, 7, tzinfo=UTC)
    assert japan is not None and japan.until == datetime(2025, 3, 4, 23, tzinfo=UTC)


def test_without_a_time_zone_no_quiet_hours_are_guessed() -> None:
    assert hold("received", now=at(3), zone=None, delivered_today=0, limits=LIMITS) is None


def test_the_daily_limit_defers_to_the_persons_next_morning() -> None:
    # Over the limit at 14:00: midnight is inside quiet hours, so 08:00 the next day.
    held = hold("in_review", now=at(14), zone=BERLIN, delivered_today=3, limits=LIMITS)
    assert held == Hold(at(8, day=5), "daily_limit")
    assert hold("in_review", now=at(14), zone=BERLIN, delivered_today=2, limits=LIMITS) is None
    # Without quiet hours or a time zone: the next UTC midnight.
    plain = Limits(daily_limit=3, quiet_hours=None)
    utc_noon = datetime(2025, 3, 4, 12, tzinfo=UTC)
    held = hold("received", now=utc_noon, zone=None, delivered_today=5, limits=plain)
    assert held == Hold(datetime(2025, 3, 5, tzinfo=UTC), "daily_limit")


def test_days_start_at_local_midnight_also_across_daylight_saving() -> None:
    # Berlin moves to summer time on 30 March 2025: that day is 23 hours long.
    moment = datetime(2025, 3, 30, 20, tzinfo=UTC)
    start = day_start(moment, BERLIN)
    assert start == datetime(2025, 3, 30, tzinfo=BERLIN)
    held = hold("received", now=moment, zone=BERLIN, delivered_today=9, limits=LIMITS)
    assert held is not None
    # 08:00 summer time on the 31st is 06:00 UTC.
    assert held.until == datetime(2025, 3, 31, 6, tzinfo=UTC)


def test_quiet_hours_may_also_lie_within_one_day() -> None:
    lunch = QuietHours(time(12), time(13))
    assert lunch.contains(datetime(2025, 3, 4, 12, 30))
    assert not lunch.contains(datetime(2025, 3, 4, 13, 0))
    assert lunch.next_end(datetime(2025, 3, 4, 12, 30)) == datetime(2025, 3, 4, 13)


def test_backoff_grows_exponentially_with_jitter_and_respects_retry_after() -> None:
    backoff = Backoff(initial_s=2, max_s=60, max_attempts=4)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (6, 60), (12, 60)]:
        delays = [backoff.delay_s(attempt, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not lockstep
    assert backoff.delay_s(1, retry_after_s=30, rng=rng) == 30
    assert not backoff.exhausted(3)
    assert backoff.exhausted(4)


def test_a_held_message_is_never_dropped_only_moved_forward() -> None:
    moment = at(23)
    for kind in ("received", "in_review", "escalated", "restored"):
        held = hold(kind, now=moment, zone=BERLIN, delivered_today=10, limits=LIMITS)
        assert held is not None
        assert moment < held.until <= moment + timedelta(days=1, hours=9)


def test_the_daily_count_is_kept_per_local_date() -> None:
    # 23:30 UTC on the 4th is already the 5th in Berlin and still the 4th in New York.
    moment = datetime(2025, 3, 4, 23, 30, tzinfo=UTC)
    assert local_day(moment, BERLIN).isoformat() == "2025-03-05"
    assert local_day(moment, ZoneInfo("America/New_York")).isoformat() == "2025-03-04"
    assert local_day(moment, None).isoformat() == "2025-03-04"
