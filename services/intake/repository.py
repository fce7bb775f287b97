"""The only module of intake that touches the store: appeals, idempotency keys, open-appeal
slots and ban-evasion identifiers.

Without transactions (FerretDB 1.x) every guarantee is one unique-index insert: a key
reservation, an open-appeal slot, an appeal record. Expiry is a field checked on read plus a
periodic sweep, since FerretDB has no TTL indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import Binary
from pymongo import ASCENDING

from appeals.v1 import appeal_pb2
from appeals_runtime import store
from appeals_runtime.errors import TransientError
from services.intake.model import AppealRecord, StatusChange

APPEALS = "appeals"
IDEMPOTENCY_KEYS = "idempotency_keys"
OPEN_APPEALS = "open_appeals"
EVASION_IDENTIFIERS = "ban_evasion_identifiers"

INDEXES = [
    store.IndexSpec(APPEALS, [("appellant_id", ASCENDING), ("received_at", -1)]),
    store.IndexSpec(IDEMPOTENCY_KEYS, [("expires_at", ASCENDING)]),
    store.IndexSpec(OPEN_APPEALS, [("appeal_id", ASCENDING)]),
]


@dataclass(frozen=True)
class IdempotencyRecord:
    scope: str
    fingerprint: str
    appeal_id: str
    reserved_at: datetime
    # The answer given once the broker acknowledged; None while the first request is in flight.
    response: dict[str, Any] | None


class IntakeRepository:
    def __init__(self, db: store.Database) -> None:
        self._appeals = db[APPEALS]
        self._keys = db[IDEMPOTENCY_KEYS]
        self._open = db[OPEN_APPEALS]
        self._evasion = db[EVASION_IDENTIFIERS]

    async def reserve_key(
        self, scope: str, fingerprint: str, appeal_id: str, now: datetime, ttl: timedelta
    ) -> IdempotencyRecord | None:
        """Reserve an idempotency key; return the live record instead if it is already taken."""
        document = {
            "_id": scope,
            "fingerprint": fingerprint,
            "appeal_id": appeal_id,
            "reserved_at": now,
            "expires_at": now + ttl,
        }
        for _ in range(2):
            if await store.insert_once(self._keys, document):
                return None
            existing = await store.available(self._keys.find_one({"_id": scope}))
            if existing is None:
                continue  # swept meanwhile
            if existing["expires_at"] > now:
                return IdempotencyRecord(
                    scope,
                    existing["fingerprint"],
                    existing["appeal_id"],
                    existing["reserved_at"],
                    existing.get("response"),
                )
            # Expired: remove exactly that reservation (not a newer one) and try again.
            await store.available(
                self._keys.delete_one({"_id": scope, "expires_at": existing["expires_at"]})
            )
        raise TransientError(f"idempotency key {scope!r} is contended; retry")

    async def record_response(self, scope: str, response: dict[str, Any]) -> None:
        await store.available(
            self._keys.update_one({"_id": scope}, {"$set": {"response": response}})
        )

    async def forget_key(self, scope: str, appeal_id: str) -> None:
        """Drop a reservation that led to no appeal, so the key may be used again."""
        await store.available(
            self._keys.delete_one({"_id": scope, "appeal_id": appeal_id, "response": None})
        )

    async def sweep_expired_keys(self, now: datetime) -> int:
        result = await store.available(self._keys.delete_many({"expires_at": {"$lte": now}}))
        return int(result.deleted_count)

    async def claim_open_slot(self, slot: str, appeal_id: str, now: datetime) -> str:
        """Hold the (appellant, item) slot for ``appeal_id``; return the appeal that holds it."""
        if await store.insert_once(
            self._open, {"_id": slot, "appeal_id": appeal_id, "opened_at": now}
        ):
            return appeal_id
        holder = await store.available(self._open.find_one({"_id": slot}))
        if holder is None:  # closed meanwhile: try once more
            return await self.claim_open_slot(slot, appeal_id, now)
        return str(holder["appeal_id"])

    async def close_open_slot(self, appeal_id: str) -> None:
        await store.available(self._open.delete_many({"appeal_id": appeal_id}))

    async def add_evasion_identifiers(self, hashes: list[str], now: datetime) -> int:
        added = 0
        for value in hashes:
            added += await store.insert_once(self._evasion, {"_id": value, "added_at": now})
        return added

    async def linked_to_evasion(self, hashes: list[str]) -> bool:
        if not hashes:
            return False
        found = await store.available(self._evasion.find_one({"_id": {"$in": hashes}}, {"_id": 1}))
        return found is not None

    async def insert_appeal(self, record: AppealRecord, *, event_id: str) -> bool:
        """Create the appeal once; False when it already exists (a retry taking over)."""
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
                "ban_evasion_suspected": record.ban_evasion_suspected,
                "acknowledged": record.acknowledged,
                "applied_events": [event_id],
            },
        )

    async def acknowledge(self, appeal_id: str) -> None:
        """The broker acknowledged the appeal's submitted event: look-ups may show it."""
        await store.available(
            self._appeals.update_one({"_id": appeal_id}, {"$set": {"acknowledged": True}})
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
            ban_evasion_suspected=document.get("ban_evasion_suspected", False),
            # Records from before the flag existed were written after the acknowledgement.
            acknowledged=document.get("acknowledged", True),
        )
