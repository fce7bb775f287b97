"""Forgetting an appellant (GDPR Art. 17): intake erases what it keeps about them.

Intake is the only holder of an appellant's personal data, so this is where an erasure happens:

1. find the person's pseudonym (``appellants``: by the keyed hash of platform and user id) and
   their appeals (the chain under the pseudonym);
2. for each appeal: replace the submission with its non-personal facts, drop the answers to
   requests for information, delete the open-appeal slot (its ``_id`` names the user), then
   announce ``particulars_erased`` on the lifecycle topic: audit logs it (the erasure is itself
   audited), notifications drops the addressing it held;
3. end the chain with a tombstone (an appeal of theirs still on its way is erased when it is
   listed, see ``appellants``);
4. forget which person the pseudonym was. It was random, so from now on it names no one: events
   on the topics, routing's cases, notifications' records and the audit log's entries keep it,
   unchanged (the log stays verifiable), and none of them can be traced back to the person.

Every step is idempotent and the pseudonym is forgotten last, so a request that failed half way
is simply made again (the answer says how many appeals it covered). A person intake does not
know gets the same answer with 0: an erasure confirms nothing about who appealed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from appeals import topics, vocabulary
from appeals.events import new_event
from appeals.v1 import events_pb2
from appeals_runtime import store, tracing
from appeals_runtime.auth import Principal, Scope
from appeals_runtime.kafka.producer import EventProducer
from services.intake import identity, validation
from services.intake.appellants import Tombstone
from services.intake.repository import IntakeRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErasureReport:
    erasure_id: str
    # The person's appeals whose particulars are erased now (or were by an earlier request).
    appeals_erased: int
    erased_at: datetime


class Erasures:
    def __init__(
        self,
        repository: IntakeRepository,
        producer: EventProducer,
        appellant_key_secret: bytes,
        *,
        clock: Callable[[], datetime],
        service_name: str = "intake",
    ) -> None:
        self._repository = repository
        self._producer = producer
        self._secret = appellant_key_secret
        self._clock = clock
        self._service_name = service_name

    async def erase_appellant(
        self, principal: Principal, platform: str, user_id: str
    ) -> ErasureReport:
        principal.require(Scope.ERASE_PARTICULARS)
        validation.ensure_valid(validation.erasure_violations(platform, user_id))
        principal.require_platform(platform)
        now = store.stored_time(self._clock())
        tombstone = Tombstone(identity.erasure_id(), principal.subject)
        appellants = self._repository.appellants
        key = identity.appellant_key(self._secret, vocabulary.PLATFORMS[platform], user_id)
        pseudonym = await appellants.known_pseudonym(key)
        erased = 0
        if pseudonym is not None:
            chain = await appellants.chain(pseudonym)
            while True:
                for appeal_id in chain.appeal_ids:
                    erased += await self.erase_appeal(appeal_id, tombstone)
                chain = await appellants.end(pseudonym, chain.end, tombstone, now)
                if chain.tombstone is not None:
                    break
            await appellants.forget(key, pseudonym)
        log.info("appellant erased", extra={"erasure_id": tombstone.erasure_id,
                 "platform": platform, "appeals": erased,
                 "requested_by": principal.subject})  # fmt: skip
        return ErasureReport(tombstone.erasure_id, erased, now)

    async def erase_appeal(self, appeal_id: str, erasure: Tombstone) -> int:
        """Erase one appeal's particulars and announce it; 1 when intake knows the appeal."""
        if not await self._repository.erase_particulars(appeal_id, self._clock()):
            return 0
        event = new_event(
            event_id=identity.particulars_erased_event_id(appeal_id),
            appeal_id=appeal_id,
            producer=self._service_name,
            occurred_at=self._clock(),
            particulars_erased=events_pb2.ParticularsErased(
                erasure_id=erasure.erasure_id, requested_by=erasure.requested_by
            ),
        )
        tracing.annotate(appeal_id)
        await self._producer.publish(topics.APPEAL_LIFECYCLE, event)
        return 1
