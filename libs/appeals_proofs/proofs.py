"""Inclusion and consistency proofs, RFC 9162 §2.1.3 and §2.1.4. Pure functions, no I/O.

Generating a proof is split in two so the store is read once per proof: :func:`inclusion_ranges`
and :func:`consistency_ranges` name the leaf ranges whose Merkle tree hashes make up the proof (in
the RFC's order); the caller hashes them (from stored complete subtrees, see
:func:`appeals_proofs.merkle.subtree_plan`). Verifying needs only hashes and sizes: a third party
runs :func:`verify_inclusion` / :func:`verify_consistency` against a signed checkpoint's root.
"""

from __future__ import annotations

from collections.abc import Sequence

from appeals_proofs.merkle import HASH_SIZE, largest_power_of_two_below, node_hash

Range = tuple[int, int]


class InvalidProof(Exception):  # noqa: N818 - reads naturally at raise sites
    """The proof does not show what it claims."""


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """PATH(index, D[0:size]): the siblings from the leaf up to the root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    ranges: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = largest_power_of_two_below(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    # The loop walks down from the root; the RFC lists the sibling nearest the leaf first.
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """PROOF(old_size, D[0:new_size]) = SUBPROOF(old_size, D[0:new_size], true)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
    if old_size in (0, new_size):
        return []
    ranges: list[Range] = []
    lo, hi, m, whole_old_tree = 0, new_size, old_size, True
    while m != hi - lo:
        k = largest_power_of_two_below(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            m -= k
            whole_old_tree = False
    if not whole_old_tree:
        # The old tree is a proper subtree here: the verifier needs its hash to start from.
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _check_hashes(hashes: Sequence[bytes]) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise InvalidProof(f"every hash in a proof has {HASH_SIZE} bytes")


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` leads to from ``leaf`` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise InvalidProof(f"leaf {index} is not in a tree of {size} leaves")
    _check_hashes([leaf, *path])
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise InvalidProof("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("the proof is shorter than the tree is deep")
    return result


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> None:
    """Raises :class:`InvalidProof` unless ``leaf`` is leaf ``index`` of the tree with ``root``."""
    if root_from_inclusion(index, size, leaf, path) != root:
        raise InvalidProof(f"leaf {index} is not in the tree of {size} leaves with that root")


def verify_consistency(
    old_size: int, new_size: int, path: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Raises :class:`InvalidProof` unless the tree with ``new_root`` extends the one with
    ``old_root`` (RFC 9162 §2.1.4.2): nothing in the first ``old_size`` leaves changed."""
    if not 0 <= old_size <= new_size:
        raise InvalidProof(f"a tree of {new_size} leaves cannot extend one of {old_size}")
    _check_hashes([old_root, new_root, *path])
    if old_size == new_size:
        if path or old_root != new_root:
            raise InvalidProof("trees of the same size are consistent only if their roots match")
        return
    if old_size == 0:
        if path:
            raise InvalidProof("an empty tree needs an empty consistency proof")
        return
    if not path:
        raise InvalidProof("a consistency proof between different sizes is never empty")
    hashes = list(path)
    if old_size & (old_size - 1) == 0:
        # The old tree is a complete subtree of the new one: its root starts the walk.
        hashes.insert(0, old_root)
    old, new = _consistency_roots(old_size, new_size, hashes)
    if old != old_root or new != new_root:
        raise InvalidProof(f"the tree of {new_size} leaves does not extend the one of {old_size}")


def _consistency_roots(old_size: int, new_size: int, hashes: list[bytes]) -> tuple[bytes, bytes]:
    """Steps 3-6 of RFC 9162 §2.1.4.2: the old and the new root the proof leads to."""
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = hashes[0]
    for sibling in hashes[1:]:
        if sn == 0:
            raise InvalidProof("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(sibling, fr)
            sr = node_hash(sibling, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("the proof is shorter than the tree is deep")
    return fr, sr
