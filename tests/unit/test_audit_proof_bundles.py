"""The third-party verifier: checks a bundle with nothing but the verifier key; forgeries fail."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appeals_proofs import bundles, checkpoints, merkle, proofs
from appeals_proofs.signed_note import InvalidNote, Signer, Verifier
from services.audit.log import entries

START = datetime(2025, 3, 1, tzinfo=UTC)
SIGNER = Signer("appeals.example/audit", Ed25519PrivateKey.generate())
VERIFIER = Verifier.from_vkey(SIGNER.verifier.vkey)  # all a third party has


def log_of(size: int) -> list[dict[str, Any]]:
    return [
        entries.new_entry(
            entries.LoggedEvent(
                event_id=f"e-{n}",
                appeal_id=f"ap_{n % 4}",
                type="decided" if n % 5 == 4 else "routed",
                schema="appeals.v1.AppealRouted",
                producer="routing",
                topic="appeals.lifecycle.v1",
                occurred_at=START + timedelta(seconds=n),
                payload=b"\x08\x01",
            ),
            index=n,
            recorded_at=START + timedelta(seconds=n),
        )
        for n in range(size)
    ]


def subtrees(documents: list[dict[str, Any]]) -> dict[merkle.Node, bytes]:
    table: dict[merkle.Node, bytes] = {}
    builder = merkle.TreeBuilder(on_node=table.__setitem__)
    for document in documents:
        leaf = bytes.fromhex(document["leaf_hash"])
        table[merkle.Node(0, document["index"])] = leaf
        builder.push(leaf)
    return table


def signed(documents: list[dict[str, Any]], size: int) -> checkpoints.SignedCheckpoint:
    table = subtrees(documents)
    root = merkle.evaluate(merkle.subtree_plan(0, size), table)
    return checkpoints.sign(checkpoints.Checkpoint(SIGNER.name, size, root), SIGNER)


def inclusion_bundle(documents: list[dict[str, Any]], index: int, size: int) -> dict[str, Any]:
    table = subtrees(documents)
    path = [
        merkle.evaluate(merkle.subtree_plan(lo, hi), table)
        for lo, hi in proofs.inclusion_ranges(index, size)
    ]
    bundle = bundles.inclusion(entries.public_form(documents[index]), path, signed(documents, size))
    # What a third party receives is JSON text.
    return dict(json.loads(json.dumps(bundle)))


def consistency_bundle(documents: list[dict[str, Any]], first: int, second: int) -> dict[str, Any]:
    table = subtrees(documents)
    path = [
        merkle.evaluate(merkle.subtree_plan(lo, hi), table)
        for lo, hi in proofs.consistency_ranges(first, second)
    ]
    bundle = bundles.consistency(signed(documents, first), signed(documents, second), path)
    return dict(json.loads(json.dumps(bundle)))


DOCUMENTS = log_of(23)


@pytest.mark.parametrize(("index", "size"), [(0, 1), (4, 23), (22, 23), (7, 8), (15, 16)])
def test_an_honest_inclusion_bundle_checks_out(index: int, size: int) -> None:
    account = bundles.check(inclusion_bundle(DOCUMENTS, index, size), VERIFIER)
    assert f"entry {index}" in account
    assert f"tree size {size}" in account


@pytest.mark.parametrize(("first", "second"), [(1, 23), (8, 16), (13, 23), (23, 23)])
def test_an_honest_consistency_bundle_checks_out(first: int, second: int) -> None:
    account = bundles.check(consistency_bundle(DOCUMENTS, first, second), VERIFIER)
    assert f"{second} entries extends its state at {first}" in account


def forge_entry(bundle: dict[str, Any]) -> None:
    bundle["entry"]["appeal_id"] = "ap_someone_else"
    bundle["leaf_hash"] = merkle.leaf_hash(bundles.canonical(bundle["entry"])).hex()


def forge_path(bundle: dict[str, Any]) -> None:
    bundle["audit_path"][0] = "00" * 32


def forge_index(bundle: dict[str, Any]) -> None:
    bundle["leaf_index"] = bundle["entry"]["index"] = 5


def forge_checkpoint_size(bundle: dict[str, Any]) -> None:
    bundle["checkpoint"] = bundle["checkpoint"].replace("\n23\n", "\n24\n")
    bundle["tree_size"] = 24


def forge_checkpoint_signer(bundle: dict[str, Any]) -> None:
    impostor = Signer(SIGNER.name, Ed25519PrivateKey.generate())
    body = bundle["checkpoint"].split("\n\n")[0] + "\n"
    bundle["checkpoint"] = impostor.sign(body)


def forge_root(bundle: dict[str, Any]) -> None:
    # A whole tree recomputed around the forged entry, signed by someone else's key.
    documents = copy.deepcopy(DOCUMENTS)
    documents[4]["appeal_id"] = "ap_someone_else"
    documents[4]["leaf_hash"] = entries.entry_leaf_hash(documents[4]).hex()
    forged = inclusion_bundle(documents, 4, 23)
    forge_checkpoint_signer(forged)
    bundle.clear()
    bundle.update(forged)


@pytest.mark.parametrize(
    "forge",
    [
        forge_entry,
        forge_path,
        forge_index,
        forge_checkpoint_size,
        forge_checkpoint_signer,
        forge_root,
        lambda b: b.update(audit_path=b["audit_path"][:-1]),
        lambda b: b.update(audit_path=["not hex"]),
        lambda b: b.update(kind="trust-me"),
        lambda b: b.pop("entry"),
    ],
)
def test_a_forged_inclusion_bundle_fails(forge: Any) -> None:
    bundle = inclusion_bundle(DOCUMENTS, 4, 23)
    forge(bundle)
    with pytest.raises((proofs.InvalidProof, InvalidNote)):
        bundles.check(bundle, VERIFIER)


@pytest.mark.parametrize(
    "forge",
    [
        lambda b: b.update(proof=["00" * 32, *b["proof"][1:]]),
        lambda b: b.update(proof=b["proof"][:-1]),
        lambda b: b.update(first_size=b["first_size"] + 1),
        lambda b: b.update(first_checkpoint=signed(DOCUMENTS, 9).note, first_size=9),
    ],
)
def test_a_forged_consistency_bundle_fails(forge: Any) -> None:
    bundle = consistency_bundle(DOCUMENTS, 13, 23)
    forge(bundle)
    with pytest.raises((proofs.InvalidProof, InvalidNote)):
        bundles.check(bundle, VERIFIER)


def test_a_rewritten_history_has_no_consistency_bundle_that_checks_out() -> None:
    rewritten = copy.deepcopy(DOCUMENTS)
    rewritten[3]["producer"] = "someone"
    rewritten[3]["leaf_hash"] = entries.entry_leaf_hash(rewritten[3]).hex()
    honest_old = signed(DOCUMENTS, 13)
    bundle = consistency_bundle(rewritten, 13, 23)
    bundle["first_checkpoint"] = honest_old.note  # the checkpoint the world already has
    with pytest.raises(proofs.InvalidProof):
        bundles.check(bundle, VERIFIER)
