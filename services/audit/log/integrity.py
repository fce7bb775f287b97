"""Checkpointing and verification: the two jobs that read the whole tree.

:class:`Integrity` integrates new entries into the stored subtrees and signs a checkpoint
(periodically and on demand), and verifies the whole log from the store against every signed
checkpoint it can find, in the store and in the checkpoint directory.

Before signing, the checkpointer proves to itself that the new tree extends the last signed one:
the stored subtrees must fold to the last checkpoint's root, and every new entry must still hash
to its stored leaf hash. A log that shrank, or was rewritten below the last checkpoint, is never
signed again; the operator gets an :class:`IntegrityError` (and verification says where).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from appeals_proofs import checkpoints, merkle
from appeals_proofs.checkpoints import Checkpoint, SignedCheckpoint
from appeals_proofs.signed_note import InvalidNote, Signer
from services.audit import metrics
from services.audit.log import checkpoint_files, entries, verification
from services.audit.log.repository import LogRepository
from services.audit.log.tree_repository import TreeRepository

log = logging.getLogger(__name__)
# Entries read and hashed between two awaits when a checkpoint integrates new entries: about
# 10-15 ms of CPU (hashing an entry costs 40-50 µs here), so appends go on in between.
CHECKPOINT_CHUNK = 250


class IntegrityError(Exception):
    """The stored log no longer extends what was signed: it will not be signed again."""


class Integrity:
    def __init__(
        self, log_repository: LogRepository, tree: TreeRepository, signer: Signer, directory: Path
    ) -> None:
        self._log = log_repository
        self._tree = tree
        self._signer = signer
        self._directory = directory

    @property
    def origin(self) -> str:
        return self._signer.name

    @property
    def verifier_key(self) -> str:
        return self._signer.verifier.vkey

    def open(self, note: str) -> SignedCheckpoint:
        return checkpoints.open_checkpoint(note, self._signer.verifier, origin=self.origin)

    async def trusted_checkpoints(self) -> tuple[list[SignedCheckpoint], int]:
        """Every checkpoint of this log whose signature verifies, from the store and the
        directory (deduplicated), and how many notes did not verify."""
        found: dict[tuple[int, bytes], SignedCheckpoint] = {}
        untrusted = 0
        for note in [*await self._tree.notes(), *checkpoint_files.notes(self._directory)]:
            try:
                signed = self.open(note)
            except InvalidNote:
                untrusted += 1
                continue
            found[(signed.size, signed.root)] = signed
        return sorted(found.values(), key=lambda s: s.size), untrusted

    async def latest(self) -> SignedCheckpoint | None:
        """The newest trusted checkpoint: the larger of the store's newest and the directory's
        (a store that lost its checkpoints still meets the files)."""
        return (await self._newest())[0]

    async def _newest(self) -> tuple[SignedCheckpoint | None, bool]:
        """The newest trusted checkpoint, and whether the store and the directory both hold it
        as their newest (else it is published again, to the place that lacks it)."""
        candidates = []
        for note in (await self._tree.latest_note(), checkpoint_files.newest_note(self._directory)):
            if note is None:
                continue
            try:
                candidates.append(self.open(note))
            except InvalidNote:
                log.error("a checkpoint of this log does not verify; ignoring it")
        newest = max(candidates, key=lambda signed: signed.size, default=None)
        if newest is None:
            return None, True
        self._log.raise_floor(newest.size)
        return newest, len(candidates) == 2 and candidates[0] == candidates[1]

    async def checkpoint_of_size(self, size: int) -> SignedCheckpoint | None:
        note = await self._tree.checkpoint_note(size)
        if note is None:
            path = self._directory / f"{size:0{entries.KEY_DIGITS}d}{checkpoint_files.SUFFIX}"
            note = path.read_text(encoding="utf-8") if path.exists() else None
        return None if note is None else self.open(note)

    async def latest_published(self) -> SignedCheckpoint | None:
        """The newest checkpoint in the store (cheap; what trails prove against)."""
        note = await self._tree.latest_note()
        return None if note is None else self.open(note)

    # Signing --------------------------------------------------------------------------------

    async def checkpoint(self) -> SignedCheckpoint:
        """Integrate every new entry and sign the tree as it now stands (idempotent: the
        same size gives the same note)."""
        latest, everywhere = await self._newest()
        size = await self._log.size()
        start = latest.size if latest else 0
        # The size is found by galloping from the known tail, so also look at the last signed
        # entry itself: a tail cut below the last checkpoint would otherwise go unnoticed here.
        if size < start or (start and not await self._log.exists(start - 1)):
            metrics.checkpoints.add(1, {"outcome": "refused"})
            raise IntegrityError(
                f"entries below the {start} that were signed are gone: entries were deleted"
            )
        if latest is not None and size == start:
            if not everywhere:
                await self._publish(latest)  # the store or the directory lost it: mend that
            return latest
        completed: list[tuple[merkle.Node, bytes]] = []
        builder = merkle.TreeBuilder(
            start, await self._resume(latest), on_node=lambda n, h: completed.append((n, h))
        )
        # A chunk at a time: hashing is CPU work with no await in it, and a busy log gathers
        # thousands of entries per interval; in one piece that stalled this process's appends
        # for most of a second every interval (the p99 of submit→audited in `make bench`).
        for chunk in range(start, size, CHECKPOINT_CHUNK):
            end = min(size, chunk + CHECKPOINT_CHUNK)
            documents = await self._log.range(chunk, end)  # by _id
            for index in range(chunk, end):
                builder.push(_checked_leaf(documents.pop(index, None), index))
        await self._tree.save_nodes(completed)
        signed = checkpoints.sign(Checkpoint(self.origin, size, builder.root()), self._signer)
        if size == 0:
            return signed  # the empty tree is everyone's: nothing worth publishing
        await self._publish(signed)
        metrics.checkpoints.add(1, {"outcome": "signed"})
        log.info("checkpoint signed", extra={"tree_size": size, "root": signed.root.hex()})
        return signed

    async def _resume(self, latest: SignedCheckpoint | None) -> list[bytes]:
        """The frontier hashes of the last signed tree, checked against its signed root."""
        if latest is None:
            return []
        frontier = merkle.frontier(latest.size)
        table = await self._tree.hashes(frontier)
        hashes = [table[node] for node in frontier]
        if merkle.fold_frontier(hashes) != latest.root:
            metrics.checkpoints.add(1, {"outcome": "refused"})
            raise IntegrityError(
                f"the stored tree no longer folds to the root signed for {latest.size} entries"
            )
        return hashes

    async def _publish(self, signed: SignedCheckpoint) -> None:
        await self._tree.save_checkpoint(signed)
        checkpoint_files.write(self._directory, signed)
        self._log.raise_floor(signed.size)

    # Verifying ------------------------------------------------------------------------------

    async def verify(self) -> verification.Verification:
        scan = verification.LogScan()
        async for document in self._log.scan():
            scan.add(document)
        trusted, _ = await self.trusted_checkpoints()
        leaves = scan.leaves()
        comparison = verification.compare_with_checkpoints(leaves, scan.size, trusted)
        located = None
        rewritten = verification.unexplained_mismatch(scan, comparison)
        if rewritten is not None:
            located = await verification.locate_rewrite(leaves, rewritten, self._tree.cached)
        return verification.summarise(
            scan,
            comparison,
            latest_checkpoint=trusted[-1].size if trusted else None,
            located=located,
        )


def _checked_leaf(document: Mapping[str, object] | None, index: int) -> bytes:
    """The leaf hash of entry ``index``, recomputed, or IntegrityError if it is not intact."""
    if document is None:
        raise IntegrityError(f"entry {index} is missing: refusing to sign")
    try:
        leaf = entries.entry_leaf_hash(document)
    except (TypeError, ValueError) as error:
        raise IntegrityError(f"entry {index} cannot be hashed: {error}") from error
    if document.get("index") != index or document.get(entries.LEAF_HASH) != leaf.hex():
        raise IntegrityError(f"entry {index} does not match its leaf hash: refusing to sign")
    return leaf
