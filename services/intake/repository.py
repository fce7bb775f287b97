"""The only module of intake that touches the store: appeals, their acknowledgements,
idempotency keys, open-appeal slots, key-expiry buckets and ban-evasion identifiers.

Without transactions (FerretDB 1.x) every guarantee is one unique-key insert: a key reservation,
an open-appeal slot, an appeal record. Every operation done per request, per event or
periodically names its documents by ``_id`` (a value or ``$in`` of values), the one lookup that
FerretDB answers from an index; anything else would scan the whole collection. Secondary indexes
would only slow inserts down, so there are none. A busy store is retried briefly (``retries``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from bson import Binary
from pymongo.errors import OperationFailure

from appeals.v1 import appeal_pb2
from appeals_runtime import store
from appeals_runtime.errors import TransientError
from appeals_runtime.expiries import ExpiryIndex
from services.intake import identity
from services.intake.appellants import Appellants
from services.intake.fresh_records import FreshRecords
from services.intake.model import AppealRecord, InfoRequest, StatusChange, without_particulars
from services.intake.received_index import ReceivedIndex
from services.intake.retries import retried_when_busy
from services.intake.status_entries import LegacyWindow, StatusEntries, folded

T = TypeVar("T")
P = ParamSpec("P")

APPEALS = "appeals"
# One document per appeal the broker acknowledged (``_id`` = appeal id), apart from the record:
# an insert goes out in the group commit with other submits' (FerretDB applies updates one by
# one, each its own write transaction, behind the collection's update lock), and the submit
# waits for its mark before answering 202.
ACKNOWLEDGEMENTS = "acknowledgements"
IDEMPOTENCY_KEYS = "idempotency_keys"
KEY_EXPIRIES = "idempotency_key_expiries"
OPEN_APPEALS = "open_appeals"
EVASION_IDENTIFIERS = "ban_evasion_identifiers"

# No secondary indexes: FerretDB never reads through them and every insert pays for them.
INDEXES: list[store.IndexSpec] = []
# Indexes earlier versions declared (nothing read through them); dropped at start-up.
RETIRED_INDEXES = (
    (APPEALS, "appellant_id_1_received_at_-1"),
    (IDEMPOTENCY_KEYS, "expires_at_1"),
    (OPEN_APPEALS, "appeal_id_1"),
)


@dataclass(frozen=True)
class IdempotencyRecord:
    scope: str
    fingerprint: str
    appeal_id: str
    reserved_at: datetime
    # The answer stored by versions that recorded it; now the appeal record's acknowledged flag
    # says whether the first request was answered.
    response: dict[str, Any] | None = None
    # The request holding it was answered 503 (its publish failed): a retry continues at once.
    failed: bool = False


async def _retried(operation: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """``operation(*args, **kwargs)``, which maps store errors itself; busy is retried briefly."""
    return await retried_when_busy(lambda: operation(*args, **kwargs))


async def _stored(operation: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """A store operation: busy is retried briefly, unavailable becomes TransientError."""
    return await retried_when_busy(lambda: store.available(operation(*args, **kwargs)))


class IntakeRepository:
    def __init__(self, db: store.Database) -> None:
        self._db = db
        self._appeals = db[APPEALS]
        self._acknowledgements = db[ACKNOWLEDGEMENTS]
        self._keys = db[IDEMPOTENCY_KEYS]
        self._expiries = db[KEY_EXPIRIES]
        self._open = db[OPEN_APPEALS]
        self._evasion = db[EVASION_IDENTIFIERS]
        self._key_expiries = ExpiryIndex(self._expiries, field="scopes")
        # Acknowledged appeals by ten seconds of reception (reconciliation lists windows of it).
        self.received = ReceivedIndex(db)
        # Pseudonyms and each person's appeals (what an erasure finds).
        self.appellants = Appellants(db)
        # What this instance recorded in the last seconds, for the particulars look-ups that
        # follow each submit; every change of particulars below forgets the record there.
        self.fresh = FreshRecords()
        # Each appeal's status changes, inserted (see status_entries), and until when an event
        # may have been applied to its record in place by an earlier version.
        self.status = StatusEntries(db)
        self.status_legacy = LegacyWindow(db, self._appeals)

    async def retire_indexes(self) -> None:
        """Drop the secondary indexes earlier versions created (at start-up)."""
        for collection, name in RETIRED_INDEXES:
            # Absent already, or its collection is: nothing to drop.
            with contextlib.suppress(OperationFailure):
                await _stored(self._db[collection].drop_index, name)

    # Idempotency keys

    async def reserve_key(
        self, scope: str, fingerprint: str, appeal_id: str, now: datetime, ttl: timedelta
    ) -> IdempotencyRecord | None:
        """Reserve an idempotency key; return the live record instead if it is already taken."""
        expires_at = now + ttl
        document = {
            "_id": scope,
            "fingerprint": fingerprint,
            "appeal_id": appeal_id,
            "reserved_at": now,
            "expires_at": expires_at,
        }
        for _ in range(2):
            if await _retried(store.insert_once, self._keys, document):
                self._key_expiries.note(scope, expires_at)
                return None
            existing = await _stored(self._keys.find_one, {"_id": scope})
            if existing is None:
                continue  # swept meanwhile
            if existing["appeal_id"] == appeal_id:
                # Our own insert: it landed although the store reported it busy.
                self._key_expiries.note(scope, existing["expires_at"])
                return None
            if existing["expires_at"] > now:
                return IdempotencyRecord(
                    scope,
                    existing["fingerprint"],
                    existing["appeal_id"],
                    existing["reserved_at"],
                    existing.get("response"),
                    failed="failed_at" in existing,
                )
            # Expired: remove exactly that reservation (not a newer one) and try again.
            await _stored(
                self._keys.delete_one, {"_id": scope, "expires_at": existing["expires_at"]}
            )
        raise TransientError(f"idempotency key {scope!r} is contended; retry")

    async def forget_key(self, scope: str, appeal_id: str) -> None:
        """Drop a reservation that led to no appeal, so the key may be used again."""
        await _stored(self._keys.delete_one, {"_id": scope, "appeal_id": appeal_id})

    async def fail_key(self, scope: str, appeal_id: str, now: datetime) -> None:
        """The request holding the key was answered 503: keep the appeal id (its event may have
        reached the broker after all) but let a retry continue it without waiting out the
        in-flight window."""
        await _stored(
            self._keys.update_one,
            {"_id": scope, "appeal_id": appeal_id},
            {"$set": {"failed_at": now}},
        )

    async def flush_key_expiries(self, now: datetime) -> int:
        """Write down when the keys reserved since the last flush expire: one write per
        expiry bucket (minute), not per key. Returns how many keys were written down."""
        return await self._key_expiries.flush(now)

    async def sweep_expired_keys(self, now: datetime) -> int:
        """Delete the keys listed in the buckets of the minutes that passed since the last
        sweep: work in proportion to what expired, however many keys the store holds."""

        async def delete(scopes: list[str]) -> int:
            # Only if still expired: a key used again after it expired is a new reservation,
            # written down in a later bucket.
            result = await _stored(
                self._keys.delete_many, {"_id": {"$in": scopes}, "expires_at": {"$lte": now}}
            )
            return int(result.deleted_count)

        return await self._key_expiries.sweep(now, delete)

    # Open-appeal slots

    async def claim_open_slot(
        self, slot: str, appeal_id: str, now: datetime, *, abandoned_after: timedelta
    ) -> str:
        """Hold the (appellant, item) slot for ``appeal_id``; return the appeal that holds it.

        A slot held longer than ``abandoned_after`` by an appeal that was never acknowledged
        (its submit crashed, or failed and could not give the slot back) is taken over: no
        request can still be working on it, and nothing else would ever free it.
        """
        document = {"_id": slot, "appeal_id": appeal_id, "opened_at": now}
        for _ in range(3):
            if await _retried(store.insert_once, self._open, document):
                return appeal_id
            holder = await _stored(self._open.find_one, {"_id": slot})
            if holder is None:
                continue  # closed meanwhile: try again
            holder_id = str(holder["appeal_id"])
            # Slots from versions that did not record the time are older than any window.
            opened_at = holder.get("opened_at")
            if holder_id == appeal_id or (opened_at and now - opened_at < abandoned_after):
                return holder_id
            if await self.is_acknowledged(holder_id):
                return holder_id
            # Exactly that abandoned hold, not one a concurrent claimant just put in its place.
            await _stored(
                self._open.delete_one,
                {"_id": slot, "appeal_id": holder_id, "opened_at": opened_at},
            )
        raise TransientError(f"open-appeal slot {slot!r} is contended; retry")

    async def release_open_slot(self, slot: str, appeal_id: str) -> None:
        """Free the slot if ``appeal_id`` holds it."""
        await _stored(self._open.delete_one, {"_id": slot, "appeal_id": appeal_id})

    async def close_open_slot(self, appeal_id: str) -> None:
        """The appeal was answered: free its slot, which its record names."""
        document = await _stored(
            self._appeals.find_one, {"_id": appeal_id}, {"open_slot": 1, "submission": 1}
        )
        if document is None:
            return
        slot = document.get("open_slot")
        if slot is None:  # recorded before records named their slot
            slot = identity.open_appeal_slot(_submission(document))
        await self.release_open_slot(slot, appeal_id)

    # Ban evasion

    async def add_evasion_identifiers(self, hashes: list[str], now: datetime) -> int:
        added = 0
        for value in hashes:
            added += await _retried(
                store.insert_once, self._evasion, {"_id": value, "added_at": now}
            )
        return added

    async def linked_to_evasion(self, hashes: list[str]) -> bool:
        if not hashes:
            return False
        found = await _stored(self._evasion.find_one, {"_id": {"$in": hashes}}, {"_id": 1})
        return found is not None

    # Appeals

    async def insert_appeal(self, record: AppealRecord, *, open_slot: str | None = None) -> bool:
        """Create the appeal once; False when it already exists (a retry taking over)."""
        document = {
            "_id": record.appeal_id,
            "surface": record.surface,
            "platform": record.platform,
            "submission": Binary(record.submission.SerializeToString()),
            "status": record.status,
            "received_at": record.received_at,
            "updated_at": record.updated_at,
            "ban_evasion_suspected": record.ban_evasion_suspected,
            "acknowledged": record.acknowledged,
        }
        if open_slot is not None:
            document["open_slot"] = open_slot  # freed by its _id when the appeal is decided
        inserted = await _retried(store.insert_once, self._appeals, document)
        if inserted:
            self.fresh.keep(record)
        return inserted

    async def acknowledge(self, appeal_id: str, *, ban_evasion_suspected: bool) -> None:
        """The broker acknowledged the appeal's submitted event: look-ups may show it. The
        ban-evasion flag, looked up while the record was written, goes with the mark."""
        # Inserted once: the status projection's later mark is a duplicate, i.e. done.
        await _retried(
            store.insert_once,
            self._acknowledgements,
            {"_id": appeal_id, "ban_evasion_suspected": ban_evasion_suspected},
        )

    async def forget_appeal(self, appeal_id: str) -> None:
        """Delete the record of an appeal that was refused before anything was published."""
        self.fresh.forget(appeal_id)
        # Never one the broker acknowledged (its mark exists), whatever the caller believes.
        if await self._acknowledgement(appeal_id) is None:
            await _stored(self._appeals.delete_one, {"_id": appeal_id, "acknowledged": False})

    async def is_acknowledged(self, appeal_id: str) -> bool:
        """Whether the appeal exists and the broker acknowledged it, i.e. the request that
        submitted it was (or should have been) answered 2xx."""
        document = await _stored(self._appeals.find_one, {"_id": appeal_id}, {"acknowledged": 1})
        if document is None:
            return False
        return _marked(document) or await self._acknowledgement(appeal_id) is not None

    async def _acknowledgement(self, appeal_id: str) -> store.Document | None:
        return await _stored(self._acknowledgements.find_one, {"_id": appeal_id})

    async def apply_status(self, appeal_id: str, event_id: str, change: StatusChange) -> bool:
        """Apply an event's status change once (an insert: see status_entries); False when it
        was applied before."""
        if self.status_legacy.may_hold(change.at) and await self._applied_in_place(
            appeal_id, event_id
        ):
            return False
        return await _retried(self.status.apply, appeal_id, event_id, change)

    async def apply_decision(self, appeal_id: str, event_id: str, change: StatusChange) -> None:
        """Apply a decision's status change once and free the item's slot, which the record
        names (also when the decision was applied before: a redelivery after a crash between
        the two)."""
        await self.apply_status(appeal_id, event_id, change)
        await self.close_open_slot(appeal_id)

    async def _applied_in_place(self, appeal_id: str, event_id: str) -> bool:
        """Whether an earlier version applied the event to the record itself."""
        document = await _stored(self._appeals.find_one, {"_id": appeal_id}, {"applied_events": 1})
        return document is not None and event_id in document.get("applied_events", ())

    async def particulars_record(self, appeal_id: str) -> AppealRecord | None:
        """The appeal's record for its particulars only (its status may be older): from what
        this instance wrote in the last seconds, else from the store."""
        return self.fresh.get(appeal_id) or await self._appeal(appeal_id, with_status=False)

    async def get_appeal(self, appeal_id: str) -> AppealRecord | None:
        """The appeal as it stands: its record with its status changes applied."""
        return await self._appeal(appeal_id, with_status=True)

    async def _appeal(self, appeal_id: str, *, with_status: bool) -> AppealRecord | None:
        reading = _stored(self._appeals.find_one, {"_id": appeal_id})
        if with_status:  # the record and its changes side by side
            document, changes = await asyncio.gather(reading, _retried(self.status.read, appeal_id))
            document = folded(document, changes) if document is not None else None
        else:
            document = await reading
        if document is None:
            return None
        acknowledged, suspected = _marked(document), document.get("ban_evasion_suspected", False)
        if not acknowledged and (mark := await self._acknowledgement(appeal_id)) is not None:
            acknowledged, suspected = True, mark["ban_evasion_suspected"]
        return AppealRecord(
            appeal_id=document["_id"],
            surface=document["surface"],
            submission=_submission(document),
            status=document["status"],
            received_at=document["received_at"],
            updated_at=document["updated_at"],
            queue=document.get("queue"),
            outcome=document.get("outcome"),
            ban_evasion_suspected=suspected,
            acknowledged=acknowledged,
            info_request=_info_request(document.get("info_request")),
            information=[_exchange(item) for item in document.get("information", [])],
            erased_at=document.get("erased_at"),
        )

    async def erase_particulars(self, appeal_id: str, now: datetime) -> bool:
        """Replace what the appellant gave with the appeal's non-personal facts, drop their
        answers to requests for information and free the item's slot (whose ``_id`` names
        them). False when intake knows no such appeal. Idempotent."""
        self.fresh.forget(appeal_id)
        document = await _stored(
            self._appeals.find_one, {"_id": appeal_id}, {"submission": 1, "open_slot": 1}
        )
        if document is None:
            return False
        submission = _submission(document)
        slot = document.get("open_slot") or identity.open_appeal_slot(submission)
        await _stored(
            self._appeals.update_one,
            {"_id": appeal_id},
            {
                "$set": {
                    "submission": Binary(without_particulars(submission).SerializeToString()),
                    "erased_at": now,
                },
                "$unset": {"information": "", "open_slot": ""},
            },
        )
        # Deleted whoever holds it: the person is forgotten, and a slot named after them must
        # not outlive that (a later appeal about the item is a new person's).
        await _stored(self._open.delete_one, {"_id": slot})
        return True

    async def record_information(
        self, appeal_id: str, exchange: appeal_pb2.InformationExchange
    ) -> None:
        """Keep the appellant's answer to one request, once: a retry adds nothing."""
        self.fresh.forget(appeal_id)
        await _stored(
            self._appeals.update_one,
            {"_id": appeal_id, "information.request_event_id": {"$ne": exchange.request_event_id}},
            {
                "$push": {
                    "information": {
                        "request_event_id": exchange.request_event_id,
                        "exchange": Binary(exchange.SerializeToString()),
                    }
                }
            },
        )


def _marked(document: store.Document) -> bool:
    """Acknowledged by the record itself: records from before the flag existed were written
    after the acknowledgement, and earlier versions set the flag in the record."""
    return bool(document.get("acknowledged", True))


async def _found(collection: store.Collection, query: store.Document) -> list[store.Document]:
    return await collection.find(query).to_list()


def _info_request(document: store.Document | None) -> InfoRequest | None:
    if not document:
        return None
    return InfoRequest(
        document["request_event_id"], document.get("question", ""), document.get("respond_by")
    )


def _exchange(document: store.Document) -> appeal_pb2.InformationExchange:
    exchange = appeal_pb2.InformationExchange()
    exchange.ParseFromString(bytes(document["exchange"]))
    return exchange


def _submission(document: store.Document) -> appeal_pb2.AppealSubmission:
    submission = appeal_pb2.AppealSubmission()
    submission.ParseFromString(bytes(document["submission"]))
    return submission
