"""How long live-help transcripts are kept: ``HELP_TRANSCRIPT_RETENTION_DAYS`` after the chat
closed, then the chat is deleted whole (messages, client ids, receipts, claims, the chat).

FerretDB has no TTL indexes and reads a whole collection for any filter but ``_id``, so a close
lists the chat in a bucket of the minute it closed (``help_chat_closed``, ``_id`` the minute,
written before the close is answered) and the sweep reads the buckets of the days now due by
``_id``: its work is what is due, never what is stored. A chat closed on day D is deleted on the
first sweep from D + 1 + retention days on (kept at least the retention, at most a day and a
sweep interval more). The marker ``swept-through`` (the first day not swept yet) moves on a day
once that day's buckets are gone, and every step deletes by ``_id`` and is idempotent, so a
sweep that failed half way is finished by the next. Idle, a sweep is one read by ``_id``.

Open chats are never listed, so never swept. Each retention sweep reads the days due under the
retention configured now: a shorter one catches up at the next sweep (at most
``MAX_DAYS_PER_SWEEP`` days a run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from appeals_runtime import expiries
from services.help.chat_repository import ChatRepository, day_of

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
# Days of buckets swept in one run (a month); a sweeper that was down longer catches up over
# the following runs.
MAX_DAYS_PER_SWEEP = 31
# Chats deleted together (each step is one command per batch; bulk statements stay far below
# the 100 FerretDB hangs on).
CHATS_PER_BATCH = 50


def last_due_day(now: datetime, retention_days: int) -> datetime:
    """The last close day whose chats have all been closed longer than the retention at
    ``now``: a chat closed late on day D is retention days old at D + 1 + retention."""
    return day_of(now) - (retention_days + 1) * DAY


def due_days(swept_through: datetime, now: datetime, retention_days: int) -> list[datetime]:
    """The close days from ``swept_through`` on that are due at ``now`` (bounded per run)."""
    last = last_due_day(now, retention_days)
    days: list[datetime] = []
    day = day_of(swept_through)
    while day <= last and len(days) < MAX_DAYS_PER_SWEEP:
        days.append(day)
        day += DAY
    return days


class TranscriptRetention:
    def __init__(
        self,
        repository: ChatRepository,
        *,
        retention_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if retention_days < 1:
            raise ValueError("transcripts are kept at least a day")
        self._repository = repository
        self._days = retention_days
        self._clock = clock

    async def sweep(self) -> int:
        """Delete the chats closed on the days now past the retention; how many were deleted."""
        swept_through = await self._repository.swept_through()
        if swept_through is None:
            return 0  # no chat ever closed
        deleted = 0
        for day in due_days(swept_through, self._clock(), self._days):
            for bucket_id, chat_ids in await self._repository.closed_on(day):
                for batch in expiries.chunks(chat_ids, CHATS_PER_BATCH):
                    deleted += await self._repository.delete_chats(batch)
                await self._repository.drop_closed_bucket(bucket_id)
            await self._repository.note_swept_through(day + DAY)
        if deleted:
            log.info(
                "closed chats past their retention deleted",
                extra={"chats": deleted, "retention_days": self._days},
            )
        return deleted
