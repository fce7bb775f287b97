"""The audit log's use cases, behind the consumer and the REST API (which the operator CLI calls).

Recording an event (sealing personal data first), logging every read before it is answered,
trails with inclusion proofs, proof bundles, reconciliation with what intake acknowledged,
erasure. No framework imports: adapters call this.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appeals_proofs import bundles, proofs
from appeals_proofs.checkpoints import SignedCheckpoint
from appeals_runtime import store
from appeals_runtime.errors import NotFound
from services.audit.exports import sources
from services.audit.exports.reconciliation import AcknowledgementSource, Reconciliation, Window
from services.audit.log import entries, records
from services.audit.log.appender import Appender
from services.audit.log.integrity import Integrity
from services.audit.log.records import IndexFacts, Recorded
from services.audit.log.repository import LogRepository
from services.audit.log.tree_repository import TreeRepository
from services.audit.privacy import sealing
from services.audit.privacy.person_keys import KeyRepository

Clock = Callable[[], datetime]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reader:
    """Who is reading the log: a verified token's subject and role."""

    subject: str
    role: str


@dataclass(frozen=True)
class TrailEntry:
    document: store.Document
    # Inclusion proof against the trail's checkpoint; None for entries newer than it.
    audit_path: list[bytes] | None
    # The W3C trace the event travelled in (from the appeal's document, not the hashed entry).
    trace_id: str | None = None


@dataclass(frozen=True)
class Trail:
    appeal_id: str
    entries: list[TrailEntry]
    checkpoint: SignedCheckpoint | None
    # The appeal's document: its summary so far (platform, queues, outcome, times).
    summary: store.Document = dataclasses.field(default_factory=dict)


class AuditService:
    def __init__(
        self,
        log: LogRepository,
        appender: Appender,
        tree: TreeRepository,
        keys: KeyRepository,
        integrity: Integrity,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.log = log
        self.appender = appender
        self.tree = tree
        self.keys = keys
        self.integrity = integrity
        self._clock = clock or (lambda: datetime.now(UTC))

    async def upgrade_store(self) -> None:
        """Bring what earlier versions stored to today's shapes (one-off, idempotent): the
        appeal indexes of earlier versions become one insert-only document per entry of an appeal
        (plus each event's slot), and the checkpoints get their ``latest`` pointer."""
        folded = await self.log.migrate_legacy_index()
        if folded:
            logger.info("folded the old appeal index into the appeal index",
                        extra={"entries": folded})  # fmt: skip
        moved = await self.log.migrate_appeal_documents()
        if moved:
            logger.info("moved the appeal documents into the appeal index",
                        extra={"appeals": moved})  # fmt: skip
        await self.tree.point_to_newest()

    # Writing ----------------------------------------------------------------------------------

    async def record(
        self, recorded: Recorded, facts: IndexFacts | None = None, *, trace_id: str | None = None
    ) -> bool:
        """Log an event once (sealing its personal data) and index it under its appeal, with
        the trace it came in (``trace_id``); False if logged before. A redelivered event's index
        entry is written again if the first delivery stopped before it (writing it is a no-op
        otherwise)."""
        event = recorded.event
        if recorded.personal is not None and recorded.subject is not None:
            key = await self.keys.key_for_sealing(recorded.subject)
            # An erased person's data is never logged again, not even under a new key.
            sealed = (
                None
                if key is None
                else sealing.seal(
                    key, recorded.personal, subject=recorded.subject, event_id=event.event_id
                )
            )
            event = dataclasses.replace(event, sealed=sealed)
        appended = await self.appender.append(event, facts, trace_id=trace_id)
        return appended.new

    async def log_access(self, reader: Reader, action: str, target: str, **details: Any) -> None:
        """Every read of the log is itself an entry, written before the read is answered."""
        await self.appender.append(
            records.access_record(
                reader=reader.subject,
                role=reader.role,
                action=action,
                target=target,
                at=self._clock(),
                **{k: v for k, v in details.items() if v is not None},
            )
        )

    async def forget(self, subject: str, reader: Reader) -> bool:
        """Crypto-shred a person's personal data; the log records that it happened."""
        shredded = await self.keys.erase(subject, requested_by=reader.subject)
        await self.appender.append(
            records.erasure_record(subject=subject, requested_by=reader.subject, at=self._clock())
        )
        return shredded

    async def forget_user(self, platform: int, user_id: str, reader: Reader) -> tuple[str, bool]:
        """Crypto-shred the personal data of a platform's user, named by audit's own pseudonym of
        them (what events in the old layout were sealed under); (pseudonym, shredded)."""
        subject = sealing.pseudonym(self.keys.secrets, platform=platform, user_id=user_id)
        return subject, await self.forget(subject, reader)

    async def personal_data(self, document: store.Document) -> bytes:
        """The sealed personal data of an entry; raises sealing.Erased once shredded."""
        sealed = document.get("sealed")
        if not sealed:
            raise sealing.Erased("this entry holds no personal data")
        key = await self.keys.key(sealed["subject"])
        return sealing.open_sealed(key, sealed, event_id=document["event_id"])

    # Reading ----------------------------------------------------------------------------------

    async def trail(self, appeal_id: str) -> Trail:
        appeal = await self.log.appeal(appeal_id)
        if appeal is None:
            raise NotFound(f"the audit log has no entries for appeal {appeal_id!r}")
        indexes = [int(entry["index"]) for entry in appeal["entries"]]
        traces = {int(entry["index"]): entry.get("trace_id") for entry in appeal["entries"]}
        documents = await self.log.entries(indexes)
        checkpoint = await self.integrity.latest_published()
        size = checkpoint.size if checkpoint else 0
        proved = [index for index in indexes if index < size]
        ranges = [proofs.inclusion_ranges(index, size) for index in proved]
        hashes = await self.tree.range_hashes([r for path in ranges for r in path])
        paths: dict[int, list[bytes]] = {}
        for index, path in zip(proved, ranges, strict=True):
            paths[index], hashes = hashes[: len(path)], hashes[len(path) :]
        return Trail(
            appeal_id,
            [TrailEntry(documents[i], paths.get(i), traces[i]) for i in indexes if i in documents],
            checkpoint,
            appeal,
        )

    async def inclusion_bundle(
        self, *, index: int | None = None, event_id: str | None = None, tree_size: int | None = None
    ) -> dict[str, Any]:
        """A proof that an entry is in a signed tree; signs a checkpoint now if none covers it."""
        if index is None:
            if event_id is None:
                raise ValueError("name an entry by index or event id")
            found = await self.log.find_event(event_id)
            if found is None:
                raise NotFound(f"the audit log has no event {event_id!r}")
            index = int(found["index"])
        document = await self.log.entry(index)
        if document is None:
            raise NotFound(f"the audit log has no entry {index}")
        signed = await self._checkpoint_covering(index, tree_size)
        path = await self.tree.range_hashes(proofs.inclusion_ranges(index, signed.size))
        return bundles.inclusion(entries.public_form(document), path, signed)

    async def _checkpoint_covering(self, index: int, tree_size: int | None) -> SignedCheckpoint:
        if tree_size is not None:
            signed = await self.integrity.checkpoint_of_size(tree_size)
            if signed is None:
                raise NotFound(f"no checkpoint was signed for {tree_size} entries")
            if index >= signed.size:
                raise NotFound(f"entry {index} is not in the tree of {tree_size} entries")
            return signed
        latest = await self.integrity.latest()
        if latest is not None and index < latest.size:
            return latest
        return await self.integrity.checkpoint()

    async def reconcile(
        self,
        window: Window,
        acknowledgements: AcknowledgementSource,
        *,
        intake: Callable[[str], Awaitable[bool]] | None = None,
    ) -> Reconciliation:
        """The log against what ``acknowledgements`` say intake acknowledged in ``window``;
        appeals only the log knows are put to ``intake`` (if given), which may still know them
        after the topics stopped retaining their acknowledgement."""
        return await sources.reconcile_log(self.log, acknowledgements, window, intake=intake)

    async def consistency_bundle(self, first: int, second: int | None = None) -> dict[str, Any]:
        old = await self.integrity.checkpoint_of_size(first)
        new = (
            await self.integrity.latest()
            if second is None
            else await self.integrity.checkpoint_of_size(second)
        )
        if old is None or new is None:
            missing = first if old is None else second
            raise NotFound(f"no checkpoint was signed for {missing} entries")
        if old.size > new.size:
            raise NotFound(f"checkpoint {old.size} is newer than checkpoint {new.size}")
        path = await self.tree.range_hashes(proofs.consistency_ranges(old.size, new.size))
        return bundles.consistency(old, new, path)
