"""The only module of routing that touches the store.

Exclusivity without transactions or atomic findAndModify (FerretDB 1.x) rests on unique ``_id``s:

* a case is a sequence of records with ``_id`` ``<appeal id>#<seq>``. Whoever changes a case
  appends the next sequence number; of two racing changes exactly one insert succeeds, and the
  loser re-reads the case and checks its step again (``services.routing.ledger``);
* an offer is ``<appeal id>#o<n>``: two streams racing to offer a case both try ``n + 1``.

``case_views`` holds each case's folded state for queries (open cases by priority, due timers,
copies by content hash). It is written after every record, never trusted for a decision: steps
re-read the records. Its writes only move forward (a view replaces one of a lower version).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING

from appeals_runtime import store
from services.routing import documents
from services.routing.model import (
    OPEN_STATUSES,
    AgentProfile,
    CaseRecord,
    CaseState,
    Offer,
    Presence,
    Status,
)

RECORDS = "case_records"
VIEWS = "case_views"
OFFERS = "offers"
AGENTS = "agents"

INDEXES = [
    store.IndexSpec(RECORDS, [("appeal_id", ASCENDING), ("seq", ASCENDING)]),
    store.IndexSpec(RECORDS, [("published", ASCENDING), ("at", ASCENDING)]),
    store.IndexSpec(
        VIEWS, [("status", ASCENDING), ("priority", DESCENDING), ("received_at", ASCENDING)]
    ),
    store.IndexSpec(VIEWS, [("status", ASCENDING), ("lease_expires_at", ASCENDING)]),
    store.IndexSpec(VIEWS, [("status", ASCENDING), ("sla_next_at", ASCENDING)]),
    store.IndexSpec(VIEWS, [("content_hash", ASCENDING)]),
    store.IndexSpec(VIEWS, [("decision_key", ASCENDING)]),
    store.IndexSpec(VIEWS, [("claimed_by", ASCENDING), ("status", ASCENDING)]),
    store.IndexSpec(OFFERS, [("appeal_id", ASCENDING), ("number", DESCENDING)]),
    store.IndexSpec(OFFERS, [("agent_id", ASCENDING), ("expires_at", ASCENDING)]),
    store.IndexSpec(OFFERS, [("stream_id", ASCENDING)]),
]

_OPEN = [status.value for status in OPEN_STATUSES]


@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int
    oldest_waiting_since: datetime | None
    breached: int


class RoutingRepository:
    def __init__(self, db: store.Database) -> None:
        self._records = db[RECORDS]
        self._views = db[VIEWS]
        self._offers = db[OFFERS]
        self._agents = db[AGENTS]

    # --- case records -----------------------------------------------------------------------

    async def append(self, record: CaseRecord) -> bool:
        """False when another change took this sequence number first."""
        return await store.insert_once(self._records, documents.record_document(record))

    async def records(self, appeal_id: str) -> list[CaseRecord]:
        cursor = self._records.find({"appeal_id": appeal_id}).sort("seq", ASCENDING)
        return [documents.record(document) for document in await store.available(cursor.to_list())]

    async def mark_published(self, record: CaseRecord) -> None:
        await store.available(
            self._records.update_one(
                {"_id": documents.record_id(record)}, {"$set": {"published": True}}
            )
        )

    async def unpublished(self, before: datetime, limit: int) -> list[CaseRecord]:
        """Records whose events may not have gone out (their writer died before publishing)."""
        cursor = (
            self._records.find({"published": False, "at": {"$lte": before}})
            .sort("at", ASCENDING)
            .limit(limit)
        )
        return [documents.record(document) for document in await store.available(cursor.to_list())]

    # --- case views -------------------------------------------------------------------------

    async def save_view(self, state: CaseState) -> None:
        document = documents.view_document(state)
        result = await store.available(
            self._views.replace_one({"_id": state.appeal_id, "version": {"$lt": state.version}},
                                    document)
        )  # fmt: skip
        if result.matched_count == 0:
            await store.insert_once(self._views, document)  # first view, or a newer one exists

    async def open_cases(
        self, queues: Iterable[str] | None, now: datetime, limit: int
    ) -> list[CaseState]:
        """Cases waiting for a reviewer, most urgent first, then oldest first."""
        query: dict[str, Any] = {
            "$or": [
                {"status": Status.QUEUED.value},
                {"status": Status.IN_REVIEW.value, "lease_expires_at": {"$lte": now}},
            ]
        }
        if queues is not None:
            query["queue"] = {"$in": sorted(queues)}
        cursor = (
            self._views.find(query)
            .sort([("priority", DESCENDING), ("received_at", ASCENDING)])
            .limit(limit)
        )
        return [
            documents.view_state(document) for document in await store.available(cursor.to_list())
        ]

    async def lease_expired(self, now: datetime, limit: int) -> list[str]:
        query = {"status": Status.IN_REVIEW.value, "lease_expires_at": {"$lte": now}}
        return await self._view_ids(query, limit)

    async def sla_due(self, now: datetime, limit: int) -> list[str]:
        return await self._view_ids({"status": {"$in": _OPEN}, "sla_next_at": {"$lte": now}}, limit)

    async def copies(self, content_hash: str, platform: int, excluding: str) -> list[str]:
        query = {
            "content_hash": content_hash,
            "platform": platform,
            "status": {"$in": _OPEN},
            "_id": {"$ne": excluding},
        }
        return await self._view_ids(query, 1000)

    async def appealed_before(self, key: str, excluding: str) -> bool:
        if not key:
            return False
        query = {"decision_key": key, "_id": {"$ne": excluding}}
        return await store.available(self._views.count_documents(query, limit=1)) > 0

    async def held_count(self, agent_id: str, now: datetime) -> int:
        query = {
            "claimed_by": agent_id,
            "status": Status.IN_REVIEW.value,
            "lease_expires_at": {"$gt": now},
        }
        return await store.available(self._views.count_documents(query))

    async def queue_stats(self) -> list[QueueStats]:
        """Depth, oldest waiting case and breached cases per queue (open cases only)."""
        projection = {"queue": 1, "status": 1, "waiting_since": 1, "sla_breached": 1}
        cursor = self._views.find({"status": {"$in": _OPEN}}, projection)
        stats: dict[str, tuple[int, datetime | None, int]] = {}
        for document in await store.available(cursor.to_list()):
            depth, oldest, breached = stats.get(document["queue"], (0, None, 0))
            waiting = document["waiting_since"] if document["status"] == "queued" else None
            if waiting is not None and (oldest is None or waiting < oldest):
                oldest = waiting
            stats[document["queue"]] = (
                depth + (document["status"] == "queued"),
                oldest,
                breached + bool(document.get("sla_breached")),
            )
        return [QueueStats(queue, *values) for queue, values in sorted(stats.items())]

    async def _view_ids(self, query: Mapping[str, Any], limit: int) -> list[str]:
        cursor = self._views.find(query, {"_id": 1}).limit(limit)
        return [document["_id"] for document in await store.available(cursor.to_list())]

    # --- offers -----------------------------------------------------------------------------

    async def latest_offers(self, appeal_ids: Iterable[str]) -> dict[str, Offer]:
        ids = sorted(set(appeal_ids))
        if not ids:
            return {}
        cursor = self._offers.find({"appeal_id": {"$in": ids}}).sort("number", DESCENDING)
        latest: dict[str, Offer] = {}
        for document in await store.available(cursor.to_list()):
            latest.setdefault(document["appeal_id"], documents.offer(document))
        return latest

    async def insert_offer(self, offer: Offer) -> bool:
        """False when another stream reserved this case first."""
        inserted = await store.insert_once(
            self._offers,
            {
                "_id": f"{offer.appeal_id}#o{offer.number}",
                "appeal_id": offer.appeal_id,
                "number": offer.number,
                "agent_id": offer.agent_id,
                "stream_id": offer.stream_id,
                "offered_at": offer.offered_at,
                "expires_at": offer.expires_at,
                "withdrawn": False,
            },
        )
        if inserted and offer.number > 2:
            # Keep the latest two: the newest number is never deleted, so it stays the maximum.
            await store.available(
                self._offers.delete_many(
                    {"appeal_id": offer.appeal_id, "number": {"$lt": offer.number - 1}}
                )
            )
        return inserted

    async def active_offers(self, agent_id: str, now: datetime) -> list[Offer]:
        query = {"agent_id": agent_id, "withdrawn": False, "expires_at": {"$gt": now}}
        return [
            documents.offer(d) for d in await store.available(self._offers.find(query).to_list())
        ]

    async def withdraw_offers(
        self, *, stream_id: str | None = None, appeal_id: str | None = None
    ) -> None:
        query: dict[str, Any] = {"withdrawn": False}
        if stream_id is not None:
            query["stream_id"] = stream_id
        if appeal_id is not None:
            query["appeal_id"] = appeal_id
        await store.available(self._offers.update_many(query, {"$set": {"withdrawn": True}}))

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
        query = {"presence": Presence.ONLINE.value, "presence_until": {"$gt": now}}
        return await store.available(self._agents.count_documents(query))
