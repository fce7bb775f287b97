"""Checkpoints: the log's size and root hash in a signed note (C2SP tlog-checkpoint). Pure.

    <origin>
    <tree size, decimal>
    <root hash, base64>

    — <key name> <base64(key id || Ed25519 signature)>

A checkpoint is the anchor held outside the store: whoever has one can check any inclusion or
consistency proof against it, and a log that holds fewer entries than a signed checkpoint, or
other entries, is caught. See https://c2sp.org/tlog-checkpoint.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from appeals_proofs.merkle import HASH_SIZE
from appeals_proofs.signed_note import InvalidNote, Signer, Verifier, open_note


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def sign(checkpoint: Checkpoint, signer: Signer) -> SignedCheckpoint:
    return SignedCheckpoint(checkpoint, signer.sign(checkpoint.body()))


def parse_body(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise InvalidNote("a checkpoint has an origin, a size and a root hash, one per line")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin:
        raise InvalidNote("a checkpoint names its origin")
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise InvalidNote(f"tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as error:
        raise InvalidNote("the root hash is not base64") from error
    if len(root) != HASH_SIZE:
        raise InvalidNote(f"the root hash has {len(root)} bytes, not {HASH_SIZE}")
    return Checkpoint(origin, int(size_text), root)


def open_checkpoint(
    note: str, verifier: Verifier, *, origin: str | None = None
) -> SignedCheckpoint:
    """The checkpoint in ``note`` once its signature and (if given) origin check out."""
    checkpoint = parse_body(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise InvalidNote(f"checkpoint of log {checkpoint.origin!r}, not of {origin!r}")
    return SignedCheckpoint(checkpoint, note)
