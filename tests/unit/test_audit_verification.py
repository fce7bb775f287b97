"""Verifying a log from its documents: every kind of tampering is found at the right index.

Pure: the "store" is a list of dicts shaped exactly as the repository writes them, and the stored
subtrees a dict. The integration tests repeat the important cases against FerretDB.
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appeals_proofs import checkpoints, merkle
from appeals_proofs.checkpoints import SignedCheckpoint
from appeals_proofs.signed_note import Signer
from services.audit.log import entries, verification

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SIGNER = Signer("example.com/audit", Ed25519PrivateKey.generate())
Documents = list[dict[str, Any]]


def logged_event(n: int) -> entries.LoggedEvent:
    return entries.LoggedEvent(
        event_id=f"event-{n}",
        appeal_id=f"appeal-{n % 3}",
        type="routed",
        schema="appeals.v1.AppealRouted",
        producer="routing",
        topic="appeals.lifecycle.v1",
        # Microseconds the store would drop: entries must hash what reads back.
        occurred_at=START + timedelta(seconds=n, microseconds=123_456),
        payload=bytes([n % 256]) * 8,
        sealed={"subject": "ps_1", "alg": "A256GCM", "nonce": "AA==", "ciphertext": "AA=="}
        if n % 4 == 0
        else None,
    )


def build_log(length: int) -> Documents:
    return [
        entries.new_entry(
            logged_event(n), index=n, recorded_at=START + timedelta(seconds=n, milliseconds=500)
        )
        for n in range(length)
    ]


def signed_at(documents: Documents, size: int) -> SignedCheckpoint:
    builder = merkle.TreeBuilder()
    for document in documents[:size]:
        builder.push(bytes.fromhex(document["leaf_hash"]))
    return checkpoints.sign(checkpoints.Checkpoint(SIGNER.name, size, builder.root()), SIGNER)


def stored_subtrees(documents: Documents) -> dict[merkle.Node, bytes]:
    stored: dict[merkle.Node, bytes] = {}
    builder = merkle.TreeBuilder(on_node=stored.__setitem__)
    for document in documents:
        builder.push(bytes.fromhex(document["leaf_hash"]))
        stored[merkle.Node(0, document["index"])] = bytes.fromhex(document["leaf_hash"])
    return stored


async def verify(
    documents: Documents,
    trusted: list[SignedCheckpoint] = (),  # type: ignore[assignment]
    cache: dict[merkle.Node, bytes] | None = None,
) -> verification.Verification:
    scan = verification.LogScan()
    for document in documents:
        scan.add(copy.deepcopy(document))
    leaves = scan.leaves()
    comparison = verification.compare_with_checkpoints(leaves, scan.size, trusted)
    located = None
    rewritten = verification.unexplained_mismatch(scan, comparison)
    if rewritten is not None and cache is not None:

        async def cached(node: merkle.Node) -> bytes | None:
            return cache.get(node)

        located = await verification.locate_rewrite(leaves, rewritten, cached)
    latest = max((c.size for c in trusted), default=None)
    return verification.summarise(scan, comparison, latest_checkpoint=latest, located=located)


def where(result: verification.Verification) -> tuple[bool, int | None, str | None]:
    return result.ok, result.first_bad_index, result.problem


# An intact log -------------------------------------------------------------------------------


async def test_an_intact_log_verifies_in_any_read_order_against_its_checkpoints() -> None:
    documents = build_log(37)
    trusted = [signed_at(documents, size) for size in (1, 8, 20, 37)]
    shuffled = documents[:]
    random.Random(7).shuffle(shuffled)

    in_order = await verify(documents, trusted)
    any_order = await verify(shuffled, trusted)

    assert in_order == any_order
    assert in_order.ok
    assert (in_order.entries, in_order.checkpoints_checked, in_order.checkpoint_size) == (37, 4, 37)
    assert in_order.root_hash == signed_at(documents, 37).root.hex()
    assert in_order.problems == 0


async def test_an_empty_log_verifies_with_the_empty_root() -> None:
    result = await verify([])
    assert result.ok
    assert result.root_hash == merkle.EMPTY_ROOT.hex()


def test_entries_hash_what_the_store_gives_back() -> None:
    (document,) = build_log(1)
    assert document["occurred_at"] == START + timedelta(microseconds=123_000)
    read_back = dict(reversed(list(copy.deepcopy(document).items())))
    assert entries.entry_leaf_hash(read_back).hex() == document["leaf_hash"]
    assert document["_id"] == "000000000000"


def test_the_public_form_re_serialises_to_the_hashed_bytes() -> None:
    document = build_log(5)[4]  # with a sealed blob: nested objects too
    public = entries.public_form(document)
    assert "_id" not in public
    assert "leaf_hash" not in public
    assert public["occurred_at"] == "2025-03-01T12:00:04.123Z"
    assert merkle.leaf_hash(entries.canonical_bytes(public)).hex() == document["leaf_hash"]


# Tampering at the entry level ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("appeal_id", "appeal-someone-else"),
        ("payload", "dGFtcGVyZWQ="),
        ("type", "decided"),
        ("occurred_at", START),
        ("recorded_at", START + timedelta(days=1)),
        ("sealed", {"subject": "ps_2", "alg": "A256GCM", "nonce": "AA==", "ciphertext": "AA=="}),
        ("leaf_hash", "00" * 32),
    ],
)
async def test_an_edited_field_is_a_hash_mismatch_at_that_entry(field: str, value: Any) -> None:
    documents = build_log(9)
    trusted = [signed_at(documents, 9)]
    documents[4][field] = value

    result = await verify(documents, trusted)

    assert where(result) == (False, 4, "hash mismatch")
    assert result.entries == 9


async def test_an_added_or_removed_field_is_a_hash_mismatch() -> None:
    added, removed = build_log(4), build_log(4)
    added[2]["note"] = "looks harmless"
    del removed[2]["producer"]
    for documents in (added, removed):
        assert where(await verify(documents)) == (False, 2, "hash mismatch")


async def test_a_deleted_entry_is_missing_at_its_index() -> None:
    documents = build_log(10)
    trusted = [signed_at(documents, 10)]
    del documents[3]

    result = await verify(documents, trusted)

    assert where(result) == (False, 3, "missing entry")
    assert result.entries == 9
    assert result.root_hash is None


async def test_a_deleted_first_entry_is_missing_at_index_zero() -> None:
    assert where(await verify(build_log(3)[1:])) == (False, 0, "missing entry")


@pytest.mark.parametrize(("first", "second"), [(2, 3), (1, 6), (0, 7)])
async def test_swapped_entries_are_out_of_place_at_the_first_of_them(
    first: int, second: int
) -> None:
    documents = build_log(8)
    a = {k: v for k, v in documents[first].items() if k != "_id"}
    b = {k: v for k, v in documents[second].items() if k != "_id"}
    documents[first].update(b)
    documents[second].update(a)

    assert where(await verify(documents)) == (False, first, "entry out of place")


async def test_swapped_entries_renumbered_are_a_hash_mismatch_at_the_first_of_them() -> None:
    documents = build_log(8)
    a = {k: v for k, v in documents[2].items() if k not in ("_id", "index")}
    b = {k: v for k, v in documents[5].items() if k not in ("_id", "index")}
    documents[2].update(b)
    documents[5].update(a)

    assert where(await verify(documents)) == (False, 2, "hash mismatch")


async def test_a_truncated_log_is_caught_by_the_latest_checkpoint_at_its_first_missing_entry() -> (
    None
):
    documents = build_log(12)
    trusted = [signed_at(documents, 5), signed_at(documents, 12)]

    result = await verify(documents[:9], trusted)

    assert where(result) == (False, 9, "truncated")
    assert result.entries == 9
    assert "12" in (result.detail or "")


async def test_without_a_checkpoint_a_truncation_cannot_be_seen() -> None:
    """What an anchor outside the store is for: the store alone cannot tell."""
    assert (await verify(build_log(12)[:9])).ok


@pytest.mark.parametrize(
    "tamper",
    [
        lambda doc: doc.update(_id="7"),
        lambda doc: doc.update(payload=b"raw bytes have no canonical form"),
        lambda doc: doc.update(occurred_at=datetime(2025, 1, 1)),  # naive
    ],
)
async def test_an_entry_that_cannot_be_hashed_is_malformed_not_a_crash(tamper: Any) -> None:
    documents = build_log(5)
    tamper(documents[3])
    assert where(await verify(documents)) == (False, 3, "malformed entry")


# Rewrites that keep every entry self-consistent ---------------------------------------------


def rehash(document: dict[str, Any]) -> None:
    document["leaf_hash"] = entries.entry_leaf_hash(document).hex()


async def test_a_rewritten_and_rehashed_entry_is_located_by_the_stored_subtrees() -> None:
    documents = build_log(20)
    cache = stored_subtrees(documents)
    trusted = [signed_at(documents, 8), signed_at(documents, 20)]
    documents[13]["appeal_id"] = "rewritten"
    rehash(documents[13])

    result = await verify(documents, trusted, cache)

    # The cache names the two-leaf subtree [12, 14) that holds the rewritten entry.
    assert where(result) == (False, 12, "checkpoint mismatch")
    assert "[12, 14)" in (result.detail or "")


async def test_a_rewrite_with_the_cache_rewritten_too_is_still_bounded_by_checkpoints() -> None:
    documents = build_log(20)
    trusted = [signed_at(documents, 8), signed_at(documents, 16), signed_at(documents, 20)]
    documents[13]["appeal_id"] = "rewritten"
    rehash(documents[13])
    forged_cache = stored_subtrees(documents)

    result = await verify(documents, trusted, forged_cache)

    assert where(result) == (False, 8, "checkpoint mismatch")
    assert "[8, 16)" in (result.detail or "")


async def test_an_edit_explains_the_checkpoint_mismatch_it_causes() -> None:
    documents = build_log(20)
    trusted = [signed_at(documents, 20)]
    documents[13]["producer"] = "someone"

    result = await verify(documents, trusted, stored_subtrees(build_log(20)))

    assert where(result) == (False, 13, "hash mismatch")


async def test_an_untouched_log_raises_no_false_alarm_however_often_it_is_verified() -> None:
    documents = build_log(50)
    trusted = [signed_at(documents, size) for size in range(1, 51, 7)]
    cache = stored_subtrees(documents)
    results = [await verify(documents, trusted, cache) for _ in range(3)]
    assert all(result.ok for result in results)
    assert results[0] == results[1] == results[2]
