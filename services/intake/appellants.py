"""Who appealed, under which pseudonym, and which appeals are theirs: what an erasure needs.

Two collections, both read and written by ``_id`` only (no scan at any size):

* ``appellants``, ``_id`` = keyed hash of platform and user id (``identity.appellant_key``):
  the person's pseudonym, random, made with their first appeal. Every event names the person by
  it. It cannot be recomputed from the user id, so deleting this document (the last step of an
  erasure) leaves the pseudonym on every event, case, notification record and audit entry
  naming no one, without rewriting any of them: the audit log stays verifiable.
* ``appellant_appeals``, ``_id`` = ``"<pseudonym>/<n>"`` for n = 0, 1, 2...: the person's
  appeals, so an erasure finds them by ``_id``. The status projection adds each appeal when its
  submitted event comes by (off the submit's path), by inserting at the first free position: a
  duplicate ``_id`` says the position is taken, and the chain is read to find the next one. An
  erasure ends the chain with a tombstone; an appeal indexed after that (its submit read the
  pseudonym just before it was forgotten) finds the tombstone and is erased in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appeals_runtime import store
from appeals_runtime.errors import TransientError
from services.intake import identity

APPELLANTS = "appellants"
APPELLANT_APPEALS = "appellant_appeals"
# Positions read per query while following a chain.
CHAIN_READ = 16
# Attempts at a free position while others take them at the same time.
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class Tombstone:
    """The erasure that ended a chain: every appeal under its pseudonym is to be erased."""

    erasure_id: str
    requested_by: str


@dataclass(frozen=True)
class Chain:
    """What a chain holds from some position on."""

    appeal_ids: list[str]
    # The first free position.
    end: int
    tombstone: Tombstone | None = None


class Appellants:
    def __init__(self, db: store.Database) -> None:
        self._people = db[APPELLANTS]
        self._appeals = db[APPELLANT_APPEALS]

    # The person's pseudonym

    async def pseudonym_for(self, key: str, now: datetime) -> str:
        """The person's pseudonym, made now if they have none (one insert for a first appeal)."""
        candidate = identity.new_pseudonym()
        for _ in range(3):
            document = {"_id": key, "pseudonym": candidate, "since": now}
            if await store.insert_once(self._people, document):
                return candidate
            known = await self.known_pseudonym(key)
            if known is not None:
                return known
            # Forgotten between the two: make a new one.
        raise TransientError("the appellant's pseudonym is contended; retry")

    async def known_pseudonym(self, key: str) -> str | None:
        found = await store.available(self._people.find_one({"_id": key}))
        return None if found is None else str(found["pseudonym"])

    async def forget(self, key: str, pseudonym: str) -> None:
        """Unlink the person from the pseudonym for good (that one, not a newer one)."""
        await store.available(self._people.delete_one({"_id": key, "pseudonym": pseudonym}))

    # Their appeals

    async def chain(self, pseudonym: str, start: int = 0) -> Chain:
        documents = await store.positioned(self._appeals, pseudonym, start=start, chunk=CHAIN_READ)
        appeal_ids: list[str] = []
        tombstone: Tombstone | None = None
        for document in documents:
            if "erased_at" in document:
                tombstone = Tombstone(document["erasure_id"], document["requested_by"])
            else:
                appeal_ids.append(str(document["appeal_id"]))
        return Chain(appeal_ids, start + len(documents), tombstone)

    async def add(self, pseudonym: str, appeal_id: str, received_at: datetime) -> Tombstone | None:
        """List the appeal under its person (idempotent); the erasure that forgot the person
        when there is one (the appeal is then not listed: it is to be erased)."""
        position = 0
        for _ in range(MAX_ATTEMPTS):
            entry = {
                "_id": store.position_id(pseudonym, position),
                "appeal_id": appeal_id,
                "received_at": store.stored_time(received_at),
            }
            if await store.insert_once(self._appeals, entry):
                return None
            chain = await self.chain(pseudonym, position)
            if chain.tombstone is not None:
                return chain.tombstone
            if appeal_id in chain.appeal_ids:
                return None  # listed before (a redelivered event)
            position = chain.end
        raise TransientError(f"could not list {appeal_id} under its appellant; retry")

    async def end(
        self, pseudonym: str, position: int, tombstone: Tombstone, now: datetime
    ) -> Chain:
        """Write the erasure's tombstone at ``position``, the chain's end as last read. When an
        appeal took that position meanwhile, nothing is written and the chain from there is
        returned without a tombstone (erase what it lists, then end it at its new end); an
        empty chain with the tombstone once it is in place."""
        document = {
            "_id": store.position_id(pseudonym, position),
            "erased_at": store.stored_time(now),
            "erasure_id": tombstone.erasure_id,
            "requested_by": tombstone.requested_by,
        }
        if await store.insert_once(self._appeals, document):
            return Chain([], position + 1, tombstone)
        chain = await self.chain(pseudonym, position)
        if not chain.appeal_ids and chain.tombstone is not None:
            return chain  # ended already (a retried erasure)
        return Chain(chain.appeal_ids, chain.end)
