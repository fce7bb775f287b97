"""The appeal records this instance wrote in the last few seconds, for the particulars look-ups
that follow every submit.

Within a second of each submit, notifications asks intake where to reach the person (and the
agent desk, once a reviewer claims the case, what they wrote): a store read each, for a record
this process wrote moments before. Keeping the records for a few seconds answers those from
memory (a store round trip saved per appeal on the hot path).

Only particulars are served from here, never an appeal's status (which the status projection
changes). Every change of particulars goes through the repository, which forgets the record
here first (erasure, answers to requests for information, a refused attempt); another instance
may change them meanwhile, so a record is kept for seconds only (``TTL_S``), far shorter than any
path that changes particulars takes (a reviewer must first claim the case and ask; an erasure
follows a person's request).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from services.intake.model import AppealRecord

TTL_S = 10.0
# At 100 appeals/s, ten seconds' worth; a few MB at most.
CAPACITY = 1024


class FreshRecords:
    def __init__(
        self,
        *,
        ttl_s: float = TTL_S,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._clock = clock
        # appeal id → (kept at, record), oldest first.
        self._records: OrderedDict[str, tuple[float, AppealRecord]] = OrderedDict()

    def keep(self, record: AppealRecord) -> None:
        self._expire()
        self._records.pop(record.appeal_id, None)
        self._records[record.appeal_id] = (self._clock(), record)
        while len(self._records) > self._capacity:
            self._records.popitem(last=False)

    def get(self, appeal_id: str) -> AppealRecord | None:
        self._expire()
        kept = self._records.get(appeal_id)
        return kept[1] if kept is not None else None

    def forget(self, appeal_id: str) -> None:
        self._records.pop(appeal_id, None)

    def __len__(self) -> int:
        self._expire()
        return len(self._records)

    def _expire(self) -> None:
        oldest_kept = self._clock() - self._ttl_s
        while self._records:
            kept_at, _ = next(iter(self._records.values()))
            if kept_at > oldest_kept:
                return
            self._records.popitem(last=False)
