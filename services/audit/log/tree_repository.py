"""Stored subtree hashes and signed checkpoints (``audit_tree``, ``audit_checkpoints``).

Layout, chosen so every read is an ``_id`` point lookup (see repository.py for why):

* ``audit_tree``: one document per complete subtree of level 1 or more, ``_id`` =
  ``"<level, 2 digits>:<index, 12 digits>"``, field ``hash`` (hex). Level 0 is the leaf hash
  stored in each entry. A complete subtree never changes, so these are written once (by the
  checkpointer, when it integrates new entries, with bulk inserts) and any root or proof node is a
  fold of at most two of them per level: O(log n) hashes per proof, whatever the log's size.
* ``audit_checkpoints``: one document per signed checkpoint, ``_id`` = the tree size zero-padded,
  with the signed note, and ``_id = "latest"``, a copy of the newest (moved forward with a
  conditional update), so the newest is an ``_id`` lookup rather than a sort over every
  checkpoint ever signed. A copy of every note also goes to files outside the store.

A subtree missing from the cache (a crash between appending and integrating, or a lookup past the
last checkpoint) is computed from its leaves and written back, so reads never fail for want of it.
Lookups are batched: a proof's nodes come back in two queries (``audit_tree`` and ``audit_log``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from appeals_proofs import merkle
from appeals_proofs.checkpoints import SignedCheckpoint
from appeals_runtime import store
from services.audit.log import entries
from services.audit.log.repository import LogRepository
from services.audit.log.writes import insert_ignoring_duplicates

AUDIT_TREE = "audit_tree"
AUDIT_CHECKPOINTS = "audit_checkpoints"
# The ``_id`` of the document that copies the newest checkpoint (the others are keyed by size).
LATEST = "latest"
INDEXES: list[store.IndexSpec] = []  # everything here is read by _id
NODE_WRITE_BATCH = 1000


def node_key(node: merkle.Node) -> str:
    return f"{node.level:02d}:{node.index:0{entries.KEY_DIGITS}d}"


class TreeRepository:
    def __init__(self, db: store.Database, log: LogRepository) -> None:
        self._tree = db[AUDIT_TREE]
        self._checkpoints = db[AUDIT_CHECKPOINTS]
        self._log = log

    # Subtree hashes -------------------------------------------------------------------------

    async def cached(self, node: merkle.Node) -> bytes | None:
        """The stored hash of ``node`` (level 0: the entry's leaf hash), or None."""
        return (await self._stored([node])).get(node)

    async def _stored(self, nodes: Iterable[merkle.Node]) -> dict[merkle.Node, bytes]:
        """The stored hashes of ``nodes`` that exist: two queries, whatever their number."""
        wanted = set(nodes)
        leaves = await self._log.leaf_hashes(node.index for node in wanted if node.level == 0)
        found = {merkle.Node(0, index): digest for index, digest in leaves.items()}
        keys = [node_key(node) for node in wanted if node.level > 0]
        if keys:
            documents = await store.available(self._tree.find({"_id": {"$in": keys}}).to_list())
            for document in documents:
                level, index = document["_id"].split(":")
                found[merkle.Node(int(level), int(index))] = bytes.fromhex(document["hash"])
        return found

    async def hashes(self, nodes: Iterable[merkle.Node]) -> dict[merkle.Node, bytes]:
        """The hash of every node, from the store or, failing that, from its leaves."""
        wanted = sorted(set(nodes))
        found = await self._stored(wanted)
        for node in wanted:
            if node not in found:
                found[node] = await self._rebuild(node)
        return found

    async def _rebuild(self, node: merkle.Node) -> bytes:
        documents = await self._log.range(node.first_leaf, node.end)
        missing = next((i for i in range(node.first_leaf, node.end) if i not in documents), None)
        if missing is not None:
            raise LookupError(f"entry {missing} is missing from the log")
        completed: list[tuple[merkle.Node, bytes]] = []
        offset = node.first_leaf

        def keep(local: merkle.Node, digest: bytes) -> None:
            completed.append(
                (merkle.Node(local.level, local.index + (offset >> local.level)), digest)
            )

        builder = merkle.TreeBuilder(on_node=keep)
        for index in range(node.first_leaf, node.end):
            builder.push(bytes.fromhex(documents[index][entries.LEAF_HASH]))
        await self.save_nodes(completed)
        return builder.root()

    async def save_nodes(self, nodes: Sequence[tuple[merkle.Node, bytes]]) -> None:
        for start in range(0, len(nodes), NODE_WRITE_BATCH):
            await insert_ignoring_duplicates(
                self._tree,
                [
                    {"_id": node_key(node), "hash": digest.hex()}
                    for node, digest in nodes[start : start + NODE_WRITE_BATCH]
                    if node.level > 0
                ],
            )

    async def range_hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """MTH of each leaf range, reading every stored subtree they need at once."""
        plans = [merkle.subtree_plan(lo, hi) for lo, hi in ranges]
        table = await self.hashes(node for plan in plans for node in merkle.plan_nodes(plan))
        return [merkle.evaluate(plan, table) for plan in plans]

    async def root(self, size: int) -> bytes:
        if size == 0:
            return merkle.EMPTY_ROOT
        (root,) = await self.range_hashes([(0, size)])
        return root

    # Checkpoints ----------------------------------------------------------------------------

    async def save_checkpoint(self, signed: SignedCheckpoint) -> bool:
        """Keep a signed checkpoint and move the ``latest`` pointer to it if it is newer; False
        when one of that size was kept already."""
        document = {
            "size": signed.size,
            "root": signed.root.hex(),
            "note": signed.note,
            "signed_at": datetime.now(UTC),
        }
        kept = await store.insert_once(
            self._checkpoints, {"_id": entries.entry_key(signed.size), **document}
        )
        await self._point_to(document)
        return kept

    async def _point_to(self, document: store.Document) -> None:
        """Move the pointer forward (never back): only a pointer to a smaller tree matches, and
        a missing one is created; a newer one makes the upsert collide, which means done."""
        with contextlib.suppress(DuplicateKeyError):
            await store.available(
                self._checkpoints.update_one(
                    {"_id": LATEST, "size": {"$lt": document["size"]}},
                    {"$set": document},
                    upsert=True,
                )
            )

    async def checkpoint_note(self, size: int) -> str | None:
        found = await store.available(
            self._checkpoints.find_one({"_id": entries.entry_key(size)}, {"note": 1})
        )
        return None if found is None else str(found["note"])

    async def latest_note(self) -> str | None:
        """The newest checkpoint's note, read by ``_id`` from the pointer."""
        found = await store.available(self._checkpoints.find_one({"_id": LATEST}, {"note": 1}))
        return None if found is None else str(found["note"])

    async def point_to_newest(self) -> None:
        """Give a store from before the pointer existed its pointer (a one-off at start-up: a
        sort over every checkpoint; a no-op once the pointer is there)."""
        if await store.available(self._checkpoints.find_one({"_id": LATEST}, {"_id": 1})):
            return
        newest = await store.available(
            self._checkpoints.find({}).sort("_id", DESCENDING).limit(1).to_list()
        )
        if newest:
            await self._point_to({k: v for k, v in newest[0].items() if k != "_id"})

    async def notes(self) -> list[str]:
        """Every stored note (verification's whole-history read; the pointer's is a copy)."""
        found = await store.available(self._checkpoints.find({}, {"note": 1}).to_list())
        return [str(document["note"]) for document in found]
