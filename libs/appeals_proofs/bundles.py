"""Self-contained proofs for third parties, and the verifier that needs nothing else. Pure.

A bundle is JSON a regulator, a court or the appellant can check with only our verifier key
(``appeals audit key``), without any access to our store:

* ``inclusion``: the entry itself (its hashed content), its index, the audit path and the signed
  checkpoint of the tree it is in. The checker re-hashes the entry, walks the path to a root and
  compares it with the root the checkpoint's signature vouches for.
* ``consistency``: two signed checkpoints and the proof that the larger tree extends the smaller
  one, i.e. nothing in the log was changed or removed between them.

Hashes are lowercase hex. :func:`check` raises :class:`InvalidProof` or :class:`InvalidNote`
naming what failed; a forged or altered bundle always fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from appeals_proofs import merkle, proofs
from appeals_proofs.checkpoints import SignedCheckpoint, open_checkpoint
from appeals_proofs.proofs import InvalidProof
from appeals_proofs.signed_note import Verifier

INCLUSION = "inclusion"
CONSISTENCY = "consistency"


def inclusion(
    entry: Mapping[str, Any], path: Sequence[bytes], signed: SignedCheckpoint
) -> dict[str, Any]:
    """``entry`` is the public (hashed) form of the entry, see entries.public_form."""
    return {
        "kind": INCLUSION,
        "origin": signed.checkpoint.origin,
        "leaf_index": entry["index"],
        "tree_size": signed.size,
        "leaf_hash": merkle.leaf_hash(canonical(entry)).hex(),
        "audit_path": [node.hex() for node in path],
        "entry": dict(entry),
        "checkpoint": signed.note,
    }


def consistency(
    first: SignedCheckpoint, second: SignedCheckpoint, path: Sequence[bytes]
) -> dict[str, Any]:
    return {
        "kind": CONSISTENCY,
        "origin": second.checkpoint.origin,
        "first_size": first.size,
        "second_size": second.size,
        "proof": [node.hex() for node in path],
        "first_checkpoint": first.note,
        "second_checkpoint": second.note,
    }


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's leaf hash covers, from its public form (same rules as entries.py)."""
    return json.dumps(
        dict(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _hashes(values: object, what: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidProof(f"{what} must be a list of hex hashes")
    try:
        return [bytes.fromhex(v) for v in values]
    except ValueError as error:
        raise InvalidProof(f"{what} holds something that is not hex") from error


def _int(bundle: Mapping[str, Any], name: str) -> int:
    value = bundle.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidProof(f"{name} must be a non-negative integer")
    return value


def check(bundle: Mapping[str, Any], verifier: Verifier) -> str:
    """Check a bundle against the log's verifier key; a one-line account of what it proved."""
    kind = bundle.get("kind")
    if kind == INCLUSION:
        return _check_inclusion(bundle, verifier)
    if kind == CONSISTENCY:
        return _check_consistency(bundle, verifier)
    raise InvalidProof(f"unknown proof kind {kind!r}")


def _check_inclusion(bundle: Mapping[str, Any], verifier: Verifier) -> str:
    signed = open_checkpoint(str(bundle.get("checkpoint", "")), verifier)
    index, size = _int(bundle, "leaf_index"), _int(bundle, "tree_size")
    if size != signed.size:
        raise InvalidProof(f"the proof is for {size} entries, the checkpoint for {signed.size}")
    entry = bundle.get("entry")
    if not isinstance(entry, dict):
        raise InvalidProof("the bundle carries no entry")
    if entry.get("index") != index:
        raise InvalidProof(f"the entry says it is entry {entry.get('index')!r}, not {index}")
    leaf = merkle.leaf_hash(canonical(entry))
    if "leaf_hash" in bundle and bundle["leaf_hash"] != leaf.hex():
        raise InvalidProof("the entry does not hash to the leaf hash the bundle names")
    proofs.verify_inclusion(
        index, size, leaf, _hashes(bundle.get("audit_path"), "audit_path"), signed.root
    )
    return (
        f"entry {index} ({entry.get('type')} of {entry.get('appeal_id') or 'the log'}) is in "
        f"{signed.checkpoint.origin} at tree size {size}, signed by {verifier.name}"
    )


def _check_consistency(bundle: Mapping[str, Any], verifier: Verifier) -> str:
    first = open_checkpoint(str(bundle.get("first_checkpoint", "")), verifier)
    second = open_checkpoint(str(bundle.get("second_checkpoint", "")), verifier)
    if first.checkpoint.origin != second.checkpoint.origin:
        raise InvalidProof("the two checkpoints are of different logs")
    if (_int(bundle, "first_size"), _int(bundle, "second_size")) != (first.size, second.size):
        raise InvalidProof("the sizes in the bundle are not those of its checkpoints")
    path = _hashes(bundle.get("proof"), "proof")
    proofs.verify_consistency(first.size, second.size, path, first.root, second.root)
    return (
        f"{second.checkpoint.origin} at {second.size} entries extends its state at "
        f"{first.size} entries: nothing before entry {first.size} changed"
    )
