"""Where to reach a person, held in memory between the notices of one appeal.

An appeal's notices often come close together (received, in review, an automated or quick
decision), and each read of the particulars costs intake a gRPC call and a store round trip.
Only what addressing needs is held (user id and contact, never the statement or attachments),
for a couple of minutes and for a bounded number of appeals; nothing is written anywhere, so a
correction at intake reaches the next notice at most ``hold_s`` later, and an erasure at once
(its ``particulars_erased`` event drops what is held).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from appeals.v1 import intake_pb2
from appeals_runtime.intake_client import ParticularsSource


def addressing_part(particulars: intake_pb2.AppealParticulars) -> intake_pb2.AppealParticulars:
    """The particulars a message needs: who (user id) and where (contact), nothing else."""
    kept = intake_pb2.AppealParticulars(appeal_id=particulars.appeal_id,
                                        user_id=particulars.user_id,
                                        erased=particulars.erased)  # fmt: skip
    kept.contact.CopyFrom(particulars.contact)
    return kept


class HeldParticulars:
    """A :class:`ParticularsSource` answering with the addressing part of what intake said,
    held ``hold_s`` seconds for at most ``entries`` appeals (least recently used go first).

    Only answers are held: "not found" and "unavailable" are asked again next time.
    """

    def __init__(
        self,
        source: ParticularsSource,
        *,
        hold_s: float,
        entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._hold_s = hold_s
        self._entries = entries
        self._clock = clock
        self._held: OrderedDict[str, tuple[float, intake_pb2.AppealParticulars]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def forget(self, appeal_id: str) -> None:
        """The appellant was forgotten at intake: hold nothing of theirs a moment longer."""
        self._held.pop(appeal_id, None)

    async def get(self, appeal_id: str) -> intake_pb2.AppealParticulars:
        held = self._held.get(appeal_id)
        if held is not None and self._clock() - held[0] < self._hold_s:
            self._held.move_to_end(appeal_id)
            return held[1]
        particulars = addressing_part(await self._source.get(appeal_id))
        if self._hold_s > 0 and self._entries > 0:
            self._held[appeal_id] = (self._clock(), particulars)
            self._held.move_to_end(appeal_id)
            while len(self._held) > self._entries:
                self._held.popitem(last=False)
        return particulars
