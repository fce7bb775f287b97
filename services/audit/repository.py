"""The only module of audit that touches the store: the hash-chained ``audit_log`` collection.

FerretDB 1.x has no transactions and no atomic findAndModify, so there is no way to lock the tail.
Appending is optimistic instead: read the tail, chain the next entry onto it and insert it with
``_id = tail + 1``. The unique ``_id`` lets exactly one appender win each index; a loser re-reads
the tail and tries again. The unique ``event_id`` index makes a redelivered event a no-op, so the
log holds each event once however many audit instances append to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from appeals_runtime import store
from appeals_runtime.errors import TransientError
from services.audit import chain

AUDIT_LOG = "audit_log"

INDEXES = [
    store.IndexSpec(AUDIT_LOG, [("event_id", ASCENDING)], unique=True),
    # Trails read one appeal's entries in log order.
    store.IndexSpec(AUDIT_LOG, [("appeal_id", ASCENDING), (chain.INDEX, ASCENDING)]),
]

# Every lost race means another entry was appended, so contention this long is not a race any
# more but a store in trouble: hand it back to the consumer's backoff.
MAX_APPEND_ATTEMPTS = 50
# Entries read per round trip while verifying; bounds memory whatever the log's size.
VERIFY_BATCH_SIZE = 500

Clock = Callable[[], datetime]
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class TrailEntry:
    index: int
    event_id: str
    type: str
    occurred_at: datetime
    recorded_at: datetime
    producer: str
    hash: str


class AuditRepository:
    def __init__(self, db: store.Database, *, clock: Clock | None = None) -> None:
        self._log = db[AUDIT_LOG]
        self._clock = clock or (lambda: datetime.now(UTC))

    async def append(self, event: chain.LoggedEvent) -> bool:
        """Chain ``event`` onto the log once; False when it is already there."""
        if await self._is_logged(event.event_id):
            return False
        for _ in range(MAX_APPEND_ATTEMPTS):
            tail = await store.available(self._log.find_one({}, sort=[(chain.INDEX, DESCENDING)]))
            entry = chain.new_entry(event, tail=tail, recorded_at=self._clock())
            try:
                await store.available(self._log.insert_one(entry))
            except DuplicateKeyError:
                # Either unique index may have refused the entry; only the event id lookup
                # tells which: logged meanwhile (done) or the index was taken (retry).
                if await self._is_logged(event.event_id):
                    return False
                continue
            return True
        raise TransientError(
            f"could not append event {event.event_id} to the audit log: "
            f"{MAX_APPEND_ATTEMPTS} appends in a row lost the race for the tail"
        )

    async def trail(self, appeal_id: str) -> list[TrailEntry]:
        """One appeal's entries in log order (empty when the log never saw the appeal)."""
        cursor = self._log.find({"appeal_id": appeal_id}).sort(chain.INDEX, ASCENDING)
        documents = await store.available(cursor.to_list())
        return [
            TrailEntry(
                index=document[chain.INDEX],
                event_id=document["event_id"],
                type=document["type"],
                occurred_at=document["occurred_at"],
                recorded_at=document["recorded_at"],
                producer=document["producer"],
                hash=document[chain.HASH],
            )
            for document in documents
        ]

    async def verify(self) -> chain.Verification:
        """Recompute every hash and link of the whole log, streaming it in index order."""
        verifier = chain.ChainVerifier()
        cursor = self._log.find({}).sort(chain.INDEX, ASCENDING).batch_size(VERIFY_BATCH_SIZE)
        try:
            async for document in cursor:
                verifier.add(document)
        except store.UNAVAILABLE_ERRORS as error:
            raise TransientError(f"document store unavailable: {error}") from error
        finally:
            await cursor.close()
        return verifier.result()

    async def _is_logged(self, event_id: str) -> bool:
        found = await store.available(self._log.find_one({"event_id": event_id}, {chain.INDEX: 1}))
        return found is not None
