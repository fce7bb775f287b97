"""When idempotency keys expire, in minute buckets (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from appeals_runtime import expiries as key_expiry
from appeals_runtime.expiries import MINUTE, ExpiryNotes

NOW = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)


def test_a_key_is_listed_in_the_minute_it_expires_or_later_never_in_a_passed_minute() -> None:
    later = NOW + timedelta(hours=24)
    assert key_expiry.bucket_for(key_expiry.minute_of(later), NOW) == later.replace(second=0)
    # A bucket for a minute the sweeper may already have passed is moved ahead of it.
    soon = NOW + timedelta(seconds=10)
    assert key_expiry.bucket_for(key_expiry.minute_of(soon), NOW) == (
        key_expiry.minute_of(NOW) + key_expiry.WRITE_AHEAD
    )
    assert key_expiry.bucket_id(key_expiry.minute_of(later)) == "2026-11-26T12:00Z"


def test_due_minutes_are_those_passed_since_the_last_sweep_and_bounded_per_run() -> None:
    start = key_expiry.minute_of(NOW)
    assert key_expiry.due_minutes(start, NOW) == []
    assert key_expiry.due_minutes(start, NOW + 3 * MINUTE) == [start + i * MINUTE for i in range(3)]
    a_month_later = NOW + timedelta(days=30)
    due = key_expiry.due_minutes(start, a_month_later)
    assert len(due) == key_expiry.MAX_MINUTES_PER_SWEEP
    assert due[0] == start


def test_notes_taken_and_not_written_are_given_back_in_their_order() -> None:
    notes = ExpiryNotes()
    first, second = NOW + MINUTE, NOW + 2 * MINUTE
    notes.note("a", first)
    notes.note("b", first + timedelta(seconds=5))
    notes.note("c", second)
    taken = notes.take()
    assert len(notes) == 0
    assert taken == {key_expiry.minute_of(first): ["a", "b"], key_expiry.minute_of(second): ["c"]}
    notes.note("d", first)
    del taken[key_expiry.minute_of(second)]  # that bucket was written
    notes.give_back(taken)
    assert notes.take() == {key_expiry.minute_of(first): ["a", "b", "d"]}


def test_chunks_bound_each_statement() -> None:
    assert list(key_expiry.chunks(["a", "b", "c"], 2)) == [["a", "b"], ["c"]]
    assert list(key_expiry.chunks([], 2)) == []
