"""The only module of intake that touches the store: appeals and idempotency keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import Binary

from appeals.v1 import appeal_pb2
from appeals_runtime import store
from services.intake.model import AppealRecord, StatusChange

APPEALS = "appeals"
IDEMPOTENCY_KEYS = "idempotency_keys"

INDEXES = [
    store.IndexSpec(APPEALS, [("appellant_id", 1), ("received_at", -1)]),
    store.IndexSpec(IDEMPOTENCY_KEYS, [("created_at", 1)]),
]


@dataclass(frozen=True)
class IdempotencyRecord:
    scope: str
    fingerprint: str
    appeal_id: str
    # The answer given once the broker acknowledged; None while the first request is in flight.
    response: dict[str, Any] | None


class IntakeRepository:
    def __init__(self, db: store.Database) -> None:
        self._appeals = db[APPEALS]
        self._keys = db[IDEMPOTENCY_KEYS]

    async def reserve_key(
        self, scope: str, fingerprint: str, appeal_id: str, now: datetime
    ) -> IdempotencyRecord | None:
        """Reserve an idempotency key; return the existing record if it was already reserved."""
        reserved = await store.insert_once(
            self._keys,
            {"_id": scope, "fingerprint": fingerprint, "appeal_id": appeal_id, "created_at": now},
        )
        if reserved:
            return None
        existing = await store.available(self._keys.find_one({"_id": scope}))
        if existing is None:  # reserved and removed meanwhile: treat as fresh
            return None
        return IdempotencyRecord(
            scope, existing["fingerprint"], existing["appeal_id"], existing.get("response")
        )

    async def record_response(self, scope: str, response: dict[str, Any]) -> None:
        await store.available(
            self._keys.update_one({"_id": scope}, {"$set": {"response": response}})
        )

    async def insert_appeal(self, record: AppealRecord, *, event_id: str) -> bool:
        """Create the appeal once; False when it already exists (a retry or the projection)."""
        return await store.insert_once(
            self._appeals,
            {
                "_id": record.appeal_id,
                "surface": record.surface,
                "platform": record.platform,
                "appellant_id": record.submission.appellant.user_id,
                "submission": Binary(record.submission.SerializeToString()),
                "status": record.status,
                "received_at": record.received_at,
                "updated_at": record.updated_at,
                "applied_events": [event_id],
            },
        )

    async def apply_status(self, appeal_id: str, event_id: str, change: StatusChange) -> bool:
        """Apply an event's status change once: the event id is recorded in the same write."""
        result = await store.available(
            self._appeals.update_one(
                {"_id": appeal_id, "applied_events": {"$ne": event_id}},
                {
                    "$set": {"status": change.status, "updated_at": change.at, **change.fields},
                    "$push": {"applied_events": event_id},
                },
            )
        )
        return bool(result.modified_count)

    async def get_appeal(self, appeal_id: str) -> AppealRecord | None:
        document = await store.available(self._appeals.find_one({"_id": appeal_id}))
        if document is None:
            return None
        submission = appeal_pb2.AppealSubmission()
        submission.ParseFromString(bytes(document["submission"]))
        return AppealRecord(
            appeal_id=document["_id"],
            surface=document["surface"],
            submission=submission,
            status=document["status"],
            received_at=document["received_at"],
            updated_at=document["updated_at"],
            queue=document.get("queue"),
            outcome=document.get("outcome"),
        )
