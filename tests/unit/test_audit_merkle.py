"""The Merkle tree and its proofs against RFC 6962/9162 test vectors and a naive recomputation.

The vectors are the Certificate Transparency ones (also in Go's ``golang.org/x/mod/sumdb/tlog``
tests): eight leaves and the root of every prefix, an inclusion and two consistency proofs. Every
other expectation comes from :func:`naive_root`, a direct transcription of the RFC's recursive
definition that shares no code with the module under test.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest

from appeals_proofs import merkle, proofs

LEAVES = [
    bytes.fromhex(x)
    for x in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    bytes.fromhex(x)
    for x in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
# RFC 6962 vectors: the inclusion proof of leaf 5 in the tree of 8, consistency 6 → 8 and 2 → 5.
INCLUSION_5_OF_8 = [
    bytes.fromhex(x)
    for x in [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
]
CONSISTENCY_6_TO_8 = [
    bytes.fromhex(x)
    for x in [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
]
CONSISTENCY_2_TO_5 = [
    bytes.fromhex(x)
    for x in [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]
]


# The RFC's definitions, transcribed naively -------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 §2.1.1 defines it."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return sha256(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_root(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_root(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [naive_root(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, leaves[:k], whole), naive_root(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_root(leaves[:k])]


def data(count: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(count)]


def hashes_of(leaves: list[bytes]) -> dict[merkle.Node, bytes]:
    """Every complete subtree's hash, by the naive definition."""
    table = {}
    level = 0
    while (1 << level) <= len(leaves):
        size = 1 << level
        for index in range(len(leaves) // size):
            table[merkle.Node(level, index)] = naive_root(leaves[index * size : (index + 1) * size])
        level += 1
    return table


def range_hashes(ranges: list[proofs.Range], leaves: list[bytes]) -> list[bytes]:
    table = hashes_of(leaves)
    return [merkle.evaluate(merkle.subtree_plan(lo, hi), table) for lo, hi in ranges]


# Hashing and roots --------------------------------------------------------------------------


def test_the_naive_definition_reproduces_the_rfc_vectors() -> None:
    assert [naive_root(LEAVES[: n + 1]) for n in range(8)] == ROOTS
    assert naive_root([]) == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_leaf_and_node_hashes_use_the_domain_separation_prefixes() -> None:
    assert merkle.leaf_hash(b"x") == sha256(b"\x00x")
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == sha256(b"\x01" + b"a" * 32 + b"b" * 32)
    assert sha256(b"") == merkle.EMPTY_ROOT


def test_the_streaming_builder_gives_every_prefix_root_of_the_vectors() -> None:
    builder = merkle.TreeBuilder()
    assert builder.root() == merkle.EMPTY_ROOT
    for n, leaf in enumerate(LEAVES):
        builder.push(merkle.leaf_hash(leaf))
        assert builder.root() == ROOTS[n]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 31, 64, 100])
def test_the_builder_reports_each_complete_subtree_once_with_its_hash(size: int) -> None:
    leaves = data(size)
    reported: list[tuple[merkle.Node, bytes]] = []
    builder = merkle.TreeBuilder(on_node=lambda node, digest: reported.append((node, digest)))
    for leaf in leaves:
        builder.push(merkle.leaf_hash(leaf))

    expected = {node: h for node, h in hashes_of(leaves).items() if node.level > 0}
    assert len(reported) == len(expected)
    assert dict(reported) == expected
    assert builder.root() == naive_root(leaves)


@pytest.mark.parametrize(("start", "size"), [(0, 5), (1, 2), (5, 13), (8, 9), (13, 40)])
def test_a_builder_resumed_from_a_frontier_continues_the_same_tree(start: int, size: int) -> None:
    leaves = data(size)
    table = hashes_of(leaves)
    frontier = [table[node] for node in merkle.frontier(start)]
    assert merkle.fold_frontier(frontier) == naive_root(leaves[:start])

    builder = merkle.TreeBuilder(start, frontier)
    for leaf in leaves[start:]:
        builder.push(merkle.leaf_hash(leaf))

    assert builder.root() == naive_root(leaves)
    assert builder.size == size


def test_a_frontier_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="frontier"):
        merkle.TreeBuilder(3, [merkle.EMPTY_ROOT])


@pytest.mark.parametrize(("lo", "hi"), [(0, 1), (0, 8), (4, 8), (8, 13), (0, 13), (3, 10), (6, 7)])
def test_the_hash_of_any_range_is_a_fold_of_complete_subtrees(lo: int, hi: int) -> None:
    leaves = data(16)
    plan = merkle.subtree_plan(lo, hi)
    assert merkle.evaluate(plan, hashes_of(leaves)) == naive_root(leaves[lo:hi])
    # Aligned ranges, the kind proofs use, need at most one stored subtree per level.
    if lo == 0 or (hi - lo) & (hi - lo - 1) == 0:
        nodes = merkle.plan_nodes(plan)
        assert len({node.level for node in nodes}) == len(nodes)


def test_the_frontier_is_the_binary_decomposition_of_the_size() -> None:
    assert merkle.frontier(0) == []
    assert merkle.frontier(13) == [merkle.Node(3, 0), merkle.Node(2, 2), merkle.Node(0, 12)]
    assert merkle.Node(2, 2).first_leaf == 8
    assert merkle.Node(2, 2).end == 12
    assert merkle.Node(2, 2).children() == (merkle.Node(1, 4), merkle.Node(1, 5))


# Inclusion proofs ---------------------------------------------------------------------------


def test_the_rfc_inclusion_vector_is_generated_and_verified() -> None:
    ranges = proofs.inclusion_ranges(5, 8)
    assert range_hashes(ranges, LEAVES) == INCLUSION_5_OF_8
    proofs.verify_inclusion(5, 8, merkle.leaf_hash(LEAVES[5]), INCLUSION_5_OF_8, ROOTS[7])
    proofs.verify_inclusion(2, 3, merkle.leaf_hash(LEAVES[2]), [ROOTS[1]], ROOTS[2])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 32, 33])
def test_every_inclusion_proof_matches_the_rfc_definition_and_verifies(size: int) -> None:
    leaves = data(size)
    root = naive_root(leaves)
    for index in range(size):
        path = range_hashes(proofs.inclusion_ranges(index, size), leaves)
        assert path == naive_path(index, leaves)
        proofs.verify_inclusion(index, size, merkle.leaf_hash(leaves[index]), path, root)


def test_forged_inclusion_proofs_fail() -> None:
    leaf = merkle.leaf_hash(LEAVES[5])
    forgeries = [
        (4, 8, leaf, INCLUSION_5_OF_8, ROOTS[7]),  # wrong index
        (5, 4, leaf, INCLUSION_5_OF_8, ROOTS[7]),  # a size that leaf 5 is not in
        (5, 16, leaf, INCLUSION_5_OF_8, ROOTS[7]),  # a deeper tree than the proof
        (5, 8, merkle.leaf_hash(LEAVES[4]), INCLUSION_5_OF_8, ROOTS[7]),  # another leaf
        (5, 8, leaf, INCLUSION_5_OF_8[:2], ROOTS[7]),  # cut short
        (5, 8, leaf, [*INCLUSION_5_OF_8, ROOTS[0]], ROOTS[7]),  # padded
        (5, 8, leaf, list(reversed(INCLUSION_5_OF_8)), ROOTS[7]),  # reordered
        (5, 8, leaf, [bytes(32), *INCLUSION_5_OF_8[1:]], ROOTS[7]),  # a sibling replaced
        (5, 8, leaf, INCLUSION_5_OF_8, ROOTS[6]),  # another root
        (8, 8, leaf, INCLUSION_5_OF_8, ROOTS[7]),  # outside the tree
        (5, 8, leaf, [b"short", *INCLUSION_5_OF_8[1:]], ROOTS[7]),  # not a hash
    ]
    for index, size, candidate, path, root in forgeries:
        with pytest.raises(proofs.InvalidProof):
            proofs.verify_inclusion(index, size, candidate, path, root)


# Consistency proofs -------------------------------------------------------------------------


def test_the_rfc_consistency_vectors_are_generated_and_verified() -> None:
    assert range_hashes(proofs.consistency_ranges(6, 8), LEAVES) == CONSISTENCY_6_TO_8
    assert range_hashes(proofs.consistency_ranges(2, 5), LEAVES) == CONSISTENCY_2_TO_5
    proofs.verify_consistency(6, 8, CONSISTENCY_6_TO_8, ROOTS[5], ROOTS[7])
    proofs.verify_consistency(2, 5, CONSISTENCY_2_TO_5, ROOTS[1], ROOTS[4])


def test_every_consistency_proof_matches_the_rfc_definition_and_verifies() -> None:
    leaves = data(21)
    for old, new in itertools.combinations_with_replacement(range(1, 22), 2):
        path = range_hashes(proofs.consistency_ranges(old, new), leaves[:new])
        assert path == (naive_subproof(old, leaves[:new], True) if old != new else [])
        proofs.verify_consistency(
            old, new, path, naive_root(leaves[:old]), naive_root(leaves[:new])
        )


def test_forged_consistency_proofs_fail() -> None:
    forgeries = [
        (6, 8, CONSISTENCY_6_TO_8, ROOTS[4], ROOTS[7]),  # another old root
        (6, 8, CONSISTENCY_6_TO_8, ROOTS[5], ROOTS[6]),  # another new root
        (5, 8, CONSISTENCY_6_TO_8, ROOTS[5], ROOTS[7]),  # another old size
        (6, 8, CONSISTENCY_6_TO_8[:2], ROOTS[5], ROOTS[7]),  # cut short
        (6, 8, [*CONSISTENCY_6_TO_8, ROOTS[0]], ROOTS[5], ROOTS[7]),  # padded
        (6, 8, [], ROOTS[5], ROOTS[7]),  # empty
        (8, 6, CONSISTENCY_6_TO_8, ROOTS[7], ROOTS[5]),  # shrinking
        (8, 8, [], ROOTS[6], ROOTS[7]),  # same size, different roots
    ]
    for old, new, path, old_root, new_root in forgeries:
        with pytest.raises(proofs.InvalidProof):
            proofs.verify_consistency(old, new, path, old_root, new_root)


def test_a_rewritten_history_has_no_consistency_proof() -> None:
    """Changing one early leaf and proving from the honest old root must fail, whatever the
    forger puts in the proof (here: the honest proof computed over the rewritten leaves)."""
    honest = data(12)
    rewritten = [*honest[:3], b"rewritten", *honest[4:]]
    path = range_hashes(proofs.consistency_ranges(7, 12), rewritten)
    with pytest.raises(proofs.InvalidProof):
        proofs.verify_consistency(7, 12, path, naive_root(honest[:7]), naive_root(rewritten))


def test_ranges_outside_the_tree_are_refused() -> None:
    with pytest.raises(ValueError):
        proofs.inclusion_ranges(3, 3)
    with pytest.raises(ValueError):
        proofs.consistency_ranges(4, 3)
    assert proofs.consistency_ranges(0, 5) == []
