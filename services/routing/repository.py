"""The only module of routing that touches the store, and only by ``_id``.

The store answers an ``_id`` lookup from its index and everything else by reading every document
of the collection (FerretDB 1.x; the README's "Performance" has the figures), so every operation
here names the document it wants:

* a case is a sequence of records with ``_id`` ``<appeal id>#<seq>``. Whoever changes a case
  inserts the next sequence number; of two racing changes exactly one insert succeeds, and the
  loser reads the records after the version it knew, by ``_id``, and checks its step again
  (``services.routing.ledger``);
* ``case_views`` (``_id`` = appeal id) holds each case's folded state, written after the
  record's events were published. A view may lag its records (a writer died in between); the
  next insert of that sequence number fails and the ledger catches up from the records;
* ``open_cases`` (``_id`` = appeal id) lists the cases not yet decided or referred: the live
  working set, read whole only when an instance starts (it fills the in-memory board from it);
* ``referrals`` (``_id`` = appeal id) lists the cases out with an external body (the Oversight
  Board, an out-of-court body) whose decision has not come back: the live set the Referrals API
  lists and the overdue check reads, never the history;
* ``decision_keys`` (``_id`` = platform and original decision id): the first appeal against a
  decision, so a repeat appeal is recognised with one insert;
* an offer is ``<appeal id>#o<n>``: two streams racing to offer a case both try ``n + 1``;
* agents are keyed by agent id.

The views also keep routing's state readable with MongoDB tooling, and rebuildable: a view can
always be refolded from the case's records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appeals_runtime import store
from appeals_runtime.errors import TransientError
from services.routing import documents
from services.routing.model import (
    AgentProfile,
    CaseRecord,
    CaseState,
    Offer,
    Presence,
)

RECORDS = "case_records"
VIEWS = "case_views"
OPEN_CASES = "open_cases"
REFERRALS = "referrals"
DECISION_KEYS = "decision_keys"
OFFERS = "offers"
AGENTS = "agents"
# One-off upgrades of an existing store, each done once (``_id`` = the upgrade's name).
UPGRADES = "routing_upgrades"

# Every lookup is by _id; no secondary index is read, and each would cost every insert.
INDEXES: list[store.IndexSpec] = []

# Views read per query when the board is filled at start.
VIEW_BATCH = 500


@dataclass(frozen=True)
class PendingReferral:
    appeal_id: str
    body: str
    respond_by: datetime


class RoutingRepository:
    def __init__(self, db: store.Database) -> None:
        self._records = db[RECORDS]
        self._views = db[VIEWS]
        self._open = db[OPEN_CASES]
        self._referrals = db[REFERRALS]
        self._decision_keys = db[DECISION_KEYS]
        self._offers = db[OFFERS]
        self._agents = db[AGENTS]
        self._upgrades = db[UPGRADES]

    # --- case records -----------------------------------------------------------------------

    async def append(self, record: CaseRecord) -> bool:
        """False when another change took this sequence number first."""
        return await store.insert_once(self._records, documents.record_document(record))

    async def record(self, appeal_id: str, seq: int) -> CaseRecord | None:
        found = await store.available(
            self._records.find_one({"_id": documents.record_key(appeal_id, seq)})
        )
        return documents.record(found) if found is not None else None

    async def records_after(self, appeal_id: str, seq: int) -> list[CaseRecord]:
        """The case's records after sequence number ``seq``, in order (one lookup each, plus
        the one that finds the end: usually none or one)."""
        found: list[CaseRecord] = []
        while (record := await self.record(appeal_id, seq + len(found) + 1)) is not None:
            found.append(record)
        return found

    async def records_exist(self, wanted: Mapping[str, int]) -> set[str]:
        """Of ``wanted`` (appeal id → sequence number), the cases that have that record."""
        keys = {documents.record_key(appeal, seq): appeal for appeal, seq in wanted.items()}
        if not keys:
            return set()
        cursor = self._records.find({"_id": {"$in": list(keys)}}, {"_id": 1})
        return {keys[document["_id"]] for document in await store.available(cursor.to_list())}

    async def records(self, appeal_id: str) -> list[CaseRecord]:
        """Every record of the case (tests and tools; the ledger reads views)."""
        return await self.records_after(appeal_id, 0)

    # --- case views -------------------------------------------------------------------------

    async def view(self, appeal_id: str) -> CaseState | None:
        found = await store.available(self._views.find_one({"_id": appeal_id}))
        return documents.view_state(found) if found is not None else None

    async def views(self, appeal_ids: Sequence[str]) -> list[CaseState]:
        """The views of ``appeal_ids`` that exist, in batches of ``$in`` on ``_id``."""
        found: list[CaseState] = []
        for start in range(0, len(appeal_ids), VIEW_BATCH):
            batch = list(appeal_ids[start : start + VIEW_BATCH])
            cursor = self._views.find({"_id": {"$in": batch}})
            found += [documents.view_state(d) for d in await store.available(cursor.to_list())]
        return found

    async def save_view(self, state: CaseState) -> None:
        """Store the case as folded; a view only ever moves forward (a newer one stays)."""
        document = documents.view_document(state)
        if state.version == 1 and await store.insert_once(self._views, document):
            return  # a new case: one insert
        result = await store.available(
            self._views.replace_one({"_id": state.appeal_id, "version": {"$lt": state.version}},
                                    document)
        )  # fmt: skip
        if result.matched_count == 0:
            await store.insert_once(self._views, document)  # first view, or a newer one exists

    # --- the live working set ---------------------------------------------------------------

    async def opened(self, appeal_id: str, at: datetime) -> None:
        await store.insert_once(self._open, {"_id": appeal_id, "opened_at": at})

    async def closed(self, appeal_id: str) -> None:
        await store.available(self._open.delete_one({"_id": appeal_id}))

    async def open_case_ids(self) -> AsyncIterator[str]:
        """Every case not yet decided or referred: the one read of a whole collection, at start,
        over the live cases only."""
        cursor = self._open.find({}, {"_id": 1}).batch_size(VIEW_BATCH)
        try:
            async for document in cursor:
                yield str(document["_id"])
        except store.UNAVAILABLE_ERRORS as error:
            raise TransientError(f"document store unavailable: {error}") from error
        finally:
            await cursor.close()

    async def referral_opened(self, state: CaseState) -> None:
        referral = state.referral
        assert referral is not None
        await store.insert_once(
            self._referrals,
            {"_id": state.appeal_id, "body": referral.body, "respond_by": referral.respond_by},
        )

    async def referral_answered(self, appeal_id: str) -> None:
        await store.available(self._referrals.delete_one({"_id": appeal_id}))

    async def pending_referrals(self) -> list[PendingReferral]:
        """Every case out with an external body: a read of the live referrals only."""
        documents = await store.available(self._referrals.find({}).to_list())
        return [PendingReferral(str(d["_id"]), d["body"], d["respond_by"]) for d in documents]

    async def upgraded(self, name: str) -> bool:
        """Whether the one-off upgrade ``name`` ran on this store."""
        return await store.available(self._upgrades.find_one({"_id": name})) is not None

    async def mark_upgraded(self, name: str, at: datetime) -> None:
        await store.insert_once(self._upgrades, {"_id": name, "at": at})

    async def views_in_open_statuses(self) -> AsyncIterator[CaseState]:
        """Open cases as the views say, reading every view: the one-off upgrade of a store
        written before ``open_cases`` existed (never on a running path)."""
        query = {"status": {"$in": ["queued", "in_review"]}}
        cursor = self._views.find(query).batch_size(VIEW_BATCH)
        try:
            async for document in cursor:
                yield documents.view_state(document)
        finally:
            await cursor.close()

    # --- repeat appeals ---------------------------------------------------------------------

    async def first_appeal_against(self, key: str, appeal_id: str, at: datetime) -> str:
        """The first appeal against the decision ``key``: ``appeal_id`` if it is the first."""
        if await store.insert_once(
            self._decision_keys, {"_id": key, "appeal_id": appeal_id, "at": at}
        ):
            return appeal_id
        found = await store.available(self._decision_keys.find_one({"_id": key}))
        return str(found["appeal_id"]) if found is not None else appeal_id

    # --- offers -----------------------------------------------------------------------------

    async def offer(self, appeal_id: str, number: int) -> Offer | None:
        found = await store.available(
            self._offers.find_one({"_id": documents.offer_key(appeal_id, number)})
        )
        return documents.offer(found) if found is not None else None

    async def insert_offer(self, offer: Offer) -> bool:
        """False when another stream reserved this case with this number first."""
        # Older offers of the case stay: deleting them would cost a write per offer, and only
        # the numbers after the last one known are ever read.
        return await store.insert_once(self._offers, documents.offer_document(offer))

    async def withdraw_offer(self, appeal_id: str, number: int) -> None:
        await store.available(
            self._offers.update_one(
                {"_id": documents.offer_key(appeal_id, number)}, {"$set": {"withdrawn": True}}
            )
        )

    # --- agents -----------------------------------------------------------------------------

    async def agent(self, agent_id: str) -> AgentProfile | None:
        document = await store.available(self._agents.find_one({"_id": agent_id}))
        return documents.agent(document) if document else None

    async def save_agent(self, profile: AgentProfile, now: datetime) -> None:
        skills = profile.skills
        fields = {
            "languages": sorted(skills.languages),
            "platforms": sorted(skills.platforms),
            "policy_areas": sorted(skills.policy_areas),
            "seniority": skills.seniority,
            "capacity": profile.capacity,
            "registered": True,
            "updated_at": now,
        }
        await store.available(
            self._agents.update_one({"_id": profile.agent_id}, {"$set": fields}, upsert=True)
        )

    async def set_presence(
        self, agent_id: str, presence: Presence, until: datetime | None, now: datetime
    ) -> None:
        fields = {"presence": presence.value, "presence_until": until, "seen_at": now}
        await store.available(
            self._agents.update_one({"_id": agent_id}, {"$set": fields}, upsert=True)
        )

    async def agents_online(self, now: datetime) -> int:
        """Agents whose stream renewed their presence lately. Reads the agents collection, which
        holds people, not appeals (its size does not grow with traffic); the metrics sweep asks
        every few seconds."""
        query: dict[str, Any] = {"presence": Presence.ONLINE.value, "presence_until": {"$gt": now}}
        return await store.available(self._agents.count_documents(query))
