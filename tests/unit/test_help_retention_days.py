"""Which close days of live-help chats are past the retention (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.help import retention
from services.help.chat_repository import day_of, minute_buckets
from services.help.retention import DAY, TranscriptRetention, due_days, last_due_day

NOW = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)
TODAY = datetime(2026, 11, 25, tzinfo=UTC)


def test_a_chat_is_kept_at_least_the_retention_and_at_most_a_day_more() -> None:
    closed_late = datetime(2026, 10, 1, 23, 59, tzinfo=UTC)
    closed_early = datetime(2026, 10, 1, 0, 1, tzinfo=UTC)
    day = day_of(closed_late)
    # Not due while any chat of the day is younger than the retention...
    assert last_due_day(closed_late + timedelta(days=30), 30) < day
    # ...due from the first midnight after the last one of the day reached it.
    due_at = day + 31 * DAY
    assert last_due_day(due_at, 30) == day
    assert due_at - closed_late >= timedelta(days=30)
    assert due_at - closed_early < timedelta(days=31)


def test_due_days_run_from_the_marker_to_the_last_due_day_bounded_per_run() -> None:
    last = TODAY - 31 * DAY
    assert due_days(last + DAY, NOW, 30) == []
    assert due_days(last - 2 * DAY, NOW, 30) == [last - 2 * DAY, last - DAY, last]
    a_year_behind = due_days(last - 365 * DAY, NOW, 30)
    assert len(a_year_behind) == retention.MAX_DAYS_PER_SWEEP
    assert a_year_behind[0] == last - 365 * DAY


def test_a_day_has_a_bucket_per_minute_named_as_the_expiry_buckets_are() -> None:
    buckets = minute_buckets(TODAY)
    assert len(buckets) == 24 * 60
    assert (buckets[0], buckets[-1]) == ("2026-11-25T00:00Z", "2026-11-25T23:59Z")
    assert day_of(datetime(2026, 11, 25, 23, 30, tzinfo=UTC)) == TODAY


def test_transcripts_are_kept_at_least_a_day() -> None:
    with pytest.raises(ValueError, match="at least a day"):
        TranscriptRetention(None, retention_days=0)  # type: ignore[arg-type]
