"""The log's Merkle tree, hashed as RFC 9162 §2.1 says. Pure functions, no I/O.

    leaf hash  = SHA-256(0x00 || entry bytes)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")

The tree over ``n`` leaves splits at the largest power of two below ``n``, so every tree is a row
of *complete* subtrees (sizes the binary digits of ``n``) folded from the right. A complete
subtree is named by :class:`Node` (level, index): it covers leaves
``[index * 2**level, (index + 1) * 2**level)`` and its hash never changes once its last leaf
exists. That is why those are the hashes worth storing: any root, and any node a proof needs, is a
fold of a few of them (:func:`subtree_plan`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The split point ``k`` of RFC 9162: the largest power of two strictly smaller than ``n``."""
    if n < 2:
        raise ValueError(f"a tree of {n} leaves does not split")
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True, order=True)
class Node:
    """A complete subtree: ``2**level`` leaves starting at leaf ``index * 2**level``."""

    level: int
    index: int

    @property
    def first_leaf(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past its last leaf."""
        return (self.index + 1) << self.level

    def children(self) -> tuple[Node, Node]:
        if self.level == 0:
            raise ValueError("a leaf has no children")
        return Node(self.level - 1, 2 * self.index), Node(self.level - 1, 2 * self.index + 1)


# How to compute MTH(D[lo:hi]) from complete subtrees: a node, or the pair a node hash combines.
Plan = Node | tuple["Plan", "Plan"]


def subtree_plan(lo: int, hi: int) -> Plan:
    """MTH(D[lo:hi]) as complete subtrees to fold, following the RFC's split rule.

    For the ranges proofs and roots use (``lo`` aligned to the size of the subtree it starts),
    the plan holds at most one node per level; any other range still works, leaf by leaf.
    """
    size = hi - lo
    if size < 1:
        raise ValueError(f"empty range [{lo}, {hi})")
    if size & (size - 1) == 0 and lo % size == 0:
        return Node(size.bit_length() - 1, lo // size)
    if size == 1:  # pragma: no cover - covered by the power-of-two case above
        return Node(0, lo)
    k = largest_power_of_two_below(size)
    return (subtree_plan(lo, lo + k), subtree_plan(lo + k, hi))


def plan_nodes(plan: Plan) -> list[Node]:
    """Every node a plan reads, left to right."""
    if isinstance(plan, Node):
        return [plan]
    left, right = plan
    return plan_nodes(left) + plan_nodes(right)


def evaluate(plan: Plan, hashes: Mapping[Node, bytes] | Callable[[Node], bytes]) -> bytes:
    lookup = hashes if callable(hashes) else hashes.__getitem__
    if isinstance(plan, Node):
        return lookup(plan)
    left, right = plan
    return node_hash(evaluate(left, lookup), evaluate(right, lookup))


def frontier(size: int) -> list[Node]:
    """The complete subtrees that make up a tree of ``size`` leaves, largest (leftmost) first."""
    nodes = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size & (1 << level):
            nodes.append(Node(level, start >> level))
            start += 1 << level
    return nodes


def fold_frontier(hashes: list[bytes]) -> bytes:
    """The root of a tree from the hashes of its :func:`frontier`, folded from the right."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


NodeSink = Callable[[Node, bytes], None]


class TreeBuilder:
    """Grows a tree one leaf hash at a time in O(log n) memory (a "compact range").

    It keeps only the frontier; each push merges equal-sized neighbours, and ``on_node`` (if
    given) hears of every complete subtree of level 1 or more the moment its last leaf arrives.
    Start it part-way with the frontier hashes of an existing tree of ``size`` leaves.
    """

    def __init__(
        self,
        size: int = 0,
        frontier_hashes: list[bytes] | None = None,
        on_node: NodeSink | None = None,
    ) -> None:
        expected = frontier(size)
        hashes = frontier_hashes or []
        if len(hashes) != len(expected):
            raise ValueError(f"a tree of {size} leaves has {len(expected)} frontier hashes")
        self._size = size
        self._stack: list[tuple[int, bytes]] = [
            (node.level, digest) for node, digest in zip(expected, hashes, strict=True)
        ]
        self._on_node = on_node

    @property
    def size(self) -> int:
        return self._size

    def push(self, leaf: bytes) -> None:
        stack = self._stack
        level, digest = 0, leaf
        self._size += 1
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            digest = node_hash(left, digest)
            level += 1
            if self._on_node is not None:
                self._on_node(Node(level, (self._size >> level) - 1), digest)
        stack.append((level, digest))

    def root(self) -> bytes:
        return fold_frontier([digest for _, digest in self._stack])

    def frontier_hashes(self) -> list[bytes]:
        return [digest for _, digest in self._stack]
