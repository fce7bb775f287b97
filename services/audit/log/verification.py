"""Verifying the whole log: recompute every leaf and the tree, compare with signed checkpoints.

Pure: the repository streams documents in, the service hands in checkpoints and, for locating a
rewrite, a lookup of stored subtree hashes. What each layer catches, and where it points:

* an entry whose content no longer hashes to its ``leaf_hash`` (edited): that entry's index;
* a slot holding another index's content (entries reordered): the first such slot;
* a slot below the end with no entry (deleted): the first empty slot;
* fewer entries than a signed checkpoint covers (truncated): the first missing index;
* an entry rewritten *and* rehashed: the recomputed tree no longer matches the root a checkpoint
  signed; the stored subtree hashes then narrow it down to the smallest complete subtree whose
  hash changed (two leaves when the cache is intact).

Documents may arrive in any order (FerretDB sorts in memory, so the scan is unsorted); the leaf
hashes are kept as 32 bytes per entry, about 32 MB for a million entries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from appeals_proofs import merkle
from appeals_proofs.checkpoints import SignedCheckpoint
from services.audit.log import entries

HASH = merkle.HASH_SIZE


class Problem(IntEnum):
    """What verification can find; the value orders findings at the same index."""

    MALFORMED_ENTRY = 1
    MISPLACED_ENTRY = 2
    HASH_MISMATCH = 3
    MISSING_ENTRY = 4
    REWRITTEN_ENTRIES = 5
    TRUNCATED = 6

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Problem.MALFORMED_ENTRY: "malformed entry",
    Problem.MISPLACED_ENTRY: "entry out of place",
    Problem.HASH_MISMATCH: "hash mismatch",
    Problem.MISSING_ENTRY: "missing entry",
    Problem.REWRITTEN_ENTRIES: "checkpoint mismatch",
    Problem.TRUNCATED: "truncated",
}


@dataclass(frozen=True, order=True)
class Finding:
    index: int
    problem: Problem
    detail: str = field(compare=False)


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    # Root of the recomputed tree (hex); None when an entry is missing and there is no tree.
    root_hash: str | None
    first_bad_index: int | None = None
    problem: str | None = None
    detail: str | None = None
    problems: int = 0
    # The newest signed checkpoint that verification trusted, and how many it compared.
    checkpoint_size: int | None = None
    checkpoints_checked: int = 0


class LeafHashes:
    """Recomputed leaf hashes of a contiguous prefix of the log, 32 bytes each."""

    def __init__(self, packed: bytes) -> None:
        self._packed = packed

    def __len__(self) -> int:
        return len(self._packed) // HASH

    def __getitem__(self, index: int) -> bytes:
        return self._packed[index * HASH : (index + 1) * HASH]

    def node_hash(self, node: merkle.Node) -> bytes:
        if node.level == 0:
            return self[node.index]
        builder = merkle.TreeBuilder()
        for index in range(node.first_leaf, node.end):
            builder.push(self[index])
        return builder.root()


class LogScan:
    """Takes the log's documents one at a time, in any order, and checks each on arrival."""

    def __init__(self) -> None:
        self.entries = 0
        self._prefix = bytearray()
        self._pending: dict[int, bytes] = {}
        self._findings: list[Finding] = []

    def add(self, document: Mapping[str, Any]) -> None:
        self.entries += 1
        key = document.get(entries.STORE_KEY)
        claimed = document.get("index")
        slot = entries.slot_of(key)
        if slot is None:
            where = claimed if isinstance(claimed, int) and claimed >= 0 else 0
            self._find(where, Problem.MALFORMED_ENTRY, f"a document with store key {key!r}")
            return
        try:
            leaf = entries.entry_leaf_hash(document)
        except (TypeError, ValueError) as error:
            self._find(slot, Problem.MALFORMED_ENTRY, f"entry {slot} cannot be hashed: {error}")
            leaf = bytes(HASH)
        else:
            if not _is_index(claimed) or claimed != slot:
                self._find(slot, Problem.MISPLACED_ENTRY, f"slot {slot} holds entry {claimed!r}")
            elif document.get(entries.LEAF_HASH) != leaf.hex():
                self._find(slot, Problem.HASH_MISMATCH, f"entry {slot} differs from its leaf hash")
        self._place(slot, leaf)

    def _place(self, slot: int, leaf: bytes) -> None:
        filled = len(self._prefix) // HASH
        if slot != filled:
            self._pending[slot] = leaf
            return
        self._prefix += leaf
        filled += 1
        while filled in self._pending:
            self._prefix += self._pending.pop(filled)
            filled += 1

    def _find(self, index: int, problem: Problem, detail: str) -> None:
        self._findings.append(Finding(index, problem, detail))

    def leaves(self) -> LeafHashes:
        """The recomputed leaf hashes up to the first empty slot."""
        return LeafHashes(bytes(self._prefix))

    @property
    def complete(self) -> bool:
        """No empty slot below the highest one: the entries form a tree."""
        return not self._pending

    @property
    def size(self) -> int:
        """One past the highest slot that holds an entry."""
        filled = len(self._prefix) // HASH
        return max(filled, max(self._pending, default=-1) + 1)

    def findings(self) -> list[Finding]:
        found = list(self._findings)
        filled = len(self._prefix) // HASH
        if self._pending:
            missing = self.size - filled - len(self._pending)
            found.append(
                Finding(filled, Problem.MISSING_ENTRY, f"{missing} slot(s) from {filled} are empty")
            )
        return found


@dataclass(frozen=True)
class CheckpointComparison:
    findings: list[Finding]
    # The smallest checkpoint the recomputed tree disagrees with, and the largest it agrees with.
    mismatch: SignedCheckpoint | None
    agreed_size: int
    root: bytes
    checked: int


def compare_with_checkpoints(
    leaves: LeafHashes, size: int, trusted: Iterable[SignedCheckpoint]
) -> CheckpointComparison:
    """Recompute the root at every checkpoint's size in one pass and compare."""
    ordered = sorted(trusted, key=lambda signed: signed.size)
    findings: list[Finding] = []
    builder = merkle.TreeBuilder()
    agreed, checked, mismatch = 0, 0, None
    for signed in ordered:
        if signed.size > len(leaves):
            break
        while builder.size < signed.size:
            builder.push(leaves[builder.size])
        checked += 1
        if builder.root() == signed.root:
            if mismatch is None:
                agreed = signed.size
        elif mismatch is None:
            mismatch = signed
            findings.append(
                Finding(
                    agreed,
                    Problem.REWRITTEN_ENTRIES,
                    f"the first {signed.size} entries no longer hash to the root signed for them: "
                    f"an entry in [{agreed}, {signed.size}) was rewritten",
                )
            )
    while builder.size < len(leaves):
        builder.push(leaves[builder.size])
    if ordered and ordered[-1].size > size:
        findings.append(
            Finding(
                size,
                Problem.TRUNCATED,
                f"the log ends at {size} entries but a checkpoint was signed for "
                f"{ordered[-1].size}",
            )
        )
    return CheckpointComparison(findings, mismatch, agreed, builder.root(), checked)


CachedNode = Callable[[merkle.Node], Awaitable[bytes | None]]


async def locate_rewrite(
    leaves: LeafHashes, signed: SignedCheckpoint, cached: CachedNode
) -> merkle.Node | None:
    """The smallest stored complete subtree whose hash the recomputed leaves no longer give.

    Starts from the subtrees that make up the checkpoint's tree and descends, always into the
    leftmost child that differs, while the store still has the children's hashes. None when
    every stored subtree agrees (the cache was rewritten too: the checkpoint range is all we know).
    """
    found: merkle.Node | None = None
    candidates = merkle.frontier(signed.size)
    while candidates:
        differing = None
        for node in candidates:
            if node.level == 0:
                continue
            stored = await cached(node)
            if stored is not None and stored != leaves.node_hash(node):
                differing = node
                break
        if differing is None:
            break
        found = differing
        candidates = list(differing.children())
    return found


def unexplained_mismatch(
    scan: LogScan, comparison: CheckpointComparison
) -> SignedCheckpoint | None:
    """The checkpoint the tree disagrees with when no entry-level finding accounts for it.

    An edited, moved or missing entry changes the recomputed root as well; the entry-level
    finding names its exact index, so the checkpoint adds nothing. Only a rewrite that kept every
    entry self-consistent (rehashed) is left for the checkpoint and the stored subtrees to find.
    """
    mismatch = comparison.mismatch
    if mismatch is None:
        return None
    if any(finding.index < mismatch.size for finding in scan.findings()):
        return None
    return mismatch


def summarise(
    scan: LogScan,
    comparison: CheckpointComparison,
    *,
    latest_checkpoint: int | None = None,
    located: merkle.Node | None = None,
) -> Verification:
    """One verdict: the lowest index any layer found a problem at (and how many it found)."""
    findings = scan.findings() + [
        finding for finding in comparison.findings if finding.problem != Problem.REWRITTEN_ENTRIES
    ]
    rewritten = unexplained_mismatch(scan, comparison)
    if rewritten is not None:
        if located is None:
            findings += [f for f in comparison.findings if f.problem == Problem.REWRITTEN_ENTRIES]
        else:
            findings.append(
                Finding(
                    located.first_leaf,
                    Problem.REWRITTEN_ENTRIES,
                    f"entries [{located.first_leaf}, {located.end}) were rewritten and rehashed: "
                    f"their stored subtree hash and the checkpoint signed for {rewritten.size} "
                    "entries both disagree with them",
                )
            )
    first = min(findings, default=None)
    return Verification(
        ok=not findings,
        entries=scan.entries,
        root_hash=comparison.root.hex() if scan.complete else None,
        first_bad_index=first.index if first else None,
        problem=first.problem.label if first else None,
        detail=first.detail if first else None,
        problems=len(findings),
        checkpoint_size=latest_checkpoint,
        checkpoints_checked=comparison.checked,
    )


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
