"""When idempotency keys expire, kept so that sweeping costs what expires, not what is stored.

FerretDB has no TTL indexes, and a query on ``expires_at`` scans every key ever stored. So each
new reservation is also noted in an expiry *bucket*: one document per minute, ``_id`` the minute,
listing the keys that expire in it. The sweeper reads the buckets of the minutes that passed
since it last ran, by ``_id``, and deletes those keys by ``_id``.

Notes are collected in memory and written about once a second, one write per bucket, instead of
one more write per submit. A crash loses the last second's notes: those keys are still ignored
once expired (every read checks ``expires_at``) and replaced when their key is used again; they
only stay in the store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta

MINUTE = timedelta(minutes=1)
# A bucket is always written at least this far ahead of the minute it is written in, so the
# sweeper, which only reads minutes that have passed, never reads a bucket before its last
# write landed (with room for a slow write and clocks of several instances that disagree).
WRITE_AHEAD = 2 * MINUTE
# At most this many minutes are swept in one run (a day); a store that was down longer is
# caught up over the following runs.
MAX_MINUTES_PER_SWEEP = 24 * 60


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def bucket_id(minute: datetime) -> str:
    return minute.strftime("%Y-%m-%dT%H:%MZ")


def bucket_for(expires_at: datetime, now: datetime) -> datetime:
    """The minute whose bucket lists a key expiring at ``expires_at``, written at ``now``."""
    return max(minute_of(expires_at), minute_of(now) + WRITE_AHEAD)


def due_minutes(swept_through: datetime, now: datetime) -> list[datetime]:
    """The minutes from ``swept_through`` on that have passed by ``now`` (bounded per run)."""
    minutes: list[datetime] = []
    minute = swept_through
    while minute < minute_of(now) and len(minutes) < MAX_MINUTES_PER_SWEEP:
        minutes.append(minute)
        minute += MINUTE
    return minutes


def chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class ExpiryNotes:
    """Keys reserved since the last write of the buckets, by the minute they expire in."""

    def __init__(self) -> None:
        self._expiring: dict[datetime, list[str]] = defaultdict(list)

    def note(self, scope: str, expires_at: datetime) -> None:
        self._expiring[minute_of(expires_at)].append(scope)

    def take(self) -> dict[datetime, list[str]]:
        """Everything noted so far; the caller writes it or gives it back."""
        taken, self._expiring = self._expiring, defaultdict(list)
        return taken

    def give_back(self, taken: dict[datetime, list[str]]) -> None:
        for minute, scopes in taken.items():
            self._expiring[minute][:0] = scopes

    def __len__(self) -> int:
        return sum(len(scopes) for scopes in self._expiring.values())
