"""The only module of routing that touches the store: cases, claims and decisions.

Exclusivity without transactions or atomic findAndModify (FerretDB 1.x): a claim is a document
whose ``_id`` is ``<appeal id>#<epoch>``. Two agents racing for a case both try to insert the
next epoch; the unique ``_id`` lets exactly one succeed. A decision's ``_id`` is the appeal id,
so a case is decided once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bson import Binary
from pymongo import ASCENDING, DESCENDING

from appeals.v1 import appeal_pb2
from appeals_runtime import store
from services.routing.model import Case, Claim, Decision

CASES = "cases"
CLAIMS = "claims"
DECISIONS = "decisions"

INDEXES = [
    store.IndexSpec(CASES, [("status", ASCENDING), ("priority", DESCENDING), ("received_at", 1)]),
    store.IndexSpec(CLAIMS, [("appeal_id", ASCENDING), ("epoch", DESCENDING)]),
]


class RoutingRepository:
    def __init__(self, db: store.Database) -> None:
        self._cases = db[CASES]
        self._claims = db[CLAIMS]
        self._decisions = db[DECISIONS]

    async def insert_case(self, case: Case) -> bool:
        return await store.insert_once(
            self._cases,
            {
                "_id": case.appeal_id,
                "queue": case.queue,
                "priority": case.priority,
                "sla_due_at": case.sla_due_at,
                "received_at": case.received_at,
                "submission": Binary(case.submission.SerializeToString()),
                "status": case.status,
            },
        )

    async def get_case(self, appeal_id: str) -> Case | None:
        document = await store.available(self._cases.find_one({"_id": appeal_id}))
        return _case(document) if document else None

    async def open_cases(
        self, queues: Iterable[str] | None, now: datetime, limit: int
    ) -> list[Case]:
        """Cases waiting for a reviewer, most urgent first, then oldest first."""
        query: dict[str, Any] = {"status": {"$in": ["queued", "in_review"]}}
        if queues is not None:
            query["queue"] = {"$in": sorted(queues)}
        cursor = (
            self._cases.find(query)
            .sort([("priority", DESCENDING), ("received_at", ASCENDING)])
            .limit(limit * 4)  # some may turn out to be claimed; read a little more
        )
        documents = await store.available(cursor.to_list())
        return [case for case in map(_case, documents) if case.is_open(now)][:limit]

    async def latest_claim(self, appeal_id: str) -> Claim | None:
        cursor = self._claims.find({"appeal_id": appeal_id}).sort("epoch", DESCENDING).limit(1)
        documents = await store.available(cursor.to_list())
        return _claim(documents[0]) if documents else None

    async def insert_claim(self, claim: Claim) -> bool:
        """False when another agent took this epoch first."""
        return await store.insert_once(
            self._claims,
            {
                "_id": f"{claim.appeal_id}#{claim.epoch}",
                "appeal_id": claim.appeal_id,
                "epoch": claim.epoch,
                "agent_id": claim.agent_id,
                "claimed_at": claim.claimed_at,
                "lease_expires_at": claim.lease_expires_at,
                "released": False,
            },
        )

    async def release_claim(self, claim: Claim) -> None:
        await store.available(
            self._claims.update_one(
                {"_id": f"{claim.appeal_id}#{claim.epoch}"}, {"$set": {"released": True}}
            )
        )

    async def mark_case(self, appeal_id: str, status: str, **fields: Any) -> None:
        await store.available(
            self._cases.update_one({"_id": appeal_id}, {"$set": {"status": status, **fields}})
        )

    async def insert_decision(self, decision: Decision) -> bool:
        return await store.insert_once(
            self._decisions,
            {
                "_id": decision.appeal_id,
                "agent_id": decision.agent_id,
                "outcome": decision.outcome,
                "rationale": decision.rationale,
                "policy_cited": decision.policy_cited,
                "decided_at": decision.decided_at,
            },
        )

    async def get_decision(self, appeal_id: str) -> Decision | None:
        document = await store.available(self._decisions.find_one({"_id": appeal_id}))
        if document is None:
            return None
        return Decision(
            appeal_id=document["_id"],
            agent_id=document["agent_id"],
            outcome=document["outcome"],
            rationale=document["rationale"],
            policy_cited=document["policy_cited"],
            decided_at=document["decided_at"],
        )


def _case(document: store.Document) -> Case:
    submission = appeal_pb2.AppealSubmission()
    submission.ParseFromString(bytes(document["submission"]))
    return Case(
        appeal_id=document["_id"],
        queue=document["queue"],
        priority=document["priority"],
        sla_due_at=document["sla_due_at"],
        received_at=document["received_at"],
        submission=submission,
        status=document["status"],
        claimed_by=document.get("claimed_by"),
        lease_expires_at=document.get("lease_expires_at"),
    )


def _claim(document: store.Document) -> Claim:
    return Claim(
        appeal_id=document["appeal_id"],
        epoch=document["epoch"],
        agent_id=document["agent_id"],
        claimed_at=document["claimed_at"],
        lease_expires_at=document["lease_expires_at"],
        released=document.get("released", False),
    )
