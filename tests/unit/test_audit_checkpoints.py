"""Signed notes and checkpoints, checked against the Go sumdb/note reference vector."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appeals_proofs import checkpoints
from appeals_proofs.signed_note import InvalidNote, Signer, Verifier, open_note

# golang.org/x/mod/sumdb/note, note_test.go and the package documentation.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_signer() -> Signer:
    material = GO_SIGNER_KEY.split("+", 4)[4]
    raw = base64.b64decode(material)
    assert raw[0] == 1
    return Signer("PeterNeumann", Ed25519PrivateKey.from_private_bytes(raw[1:]))


def test_signing_reproduces_the_go_reference_note_byte_for_byte() -> None:
    signer = go_signer()
    assert signer.sign(GO_TEXT) == GO_NOTE
    assert signer.verifier.vkey == GO_VERIFIER_KEY


def test_the_go_reference_note_opens_with_its_verifier_key() -> None:
    verifier = Verifier.from_vkey(GO_VERIFIER_KEY)
    assert verifier.key_id.hex() == "c74f20a3"
    assert open_note(GO_NOTE, verifier) == GO_TEXT


def test_the_key_id_is_the_spec_hash_of_name_type_and_key() -> None:
    verifier = Verifier.from_vkey(GO_VERIFIER_KEY)
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key).digest()[:4]
    assert verifier.key_id == expected


@pytest.mark.parametrize(
    "tampered",
    [
        GO_NOTE.replace("cryptography", "cryptographY"),
        GO_NOTE.replace("x08go/", "x08go+"),
        GO_NOTE.replace("PeterNeumann x", "PeterNeumann  x"),
        GO_NOTE.replace("\n\n", "\n"),
        GO_NOTE.rstrip("\n"),
    ],
)
def test_a_tampered_note_does_not_open(tampered: str) -> None:
    with pytest.raises(InvalidNote):
        open_note(tampered, Verifier.from_vkey(GO_VERIFIER_KEY))


def test_a_note_signed_by_another_key_of_the_same_name_does_not_open() -> None:
    impostor = Signer("PeterNeumann", Ed25519PrivateKey.generate())
    with pytest.raises(InvalidNote, match="no signature by PeterNeumann"):
        open_note(impostor.sign(GO_TEXT), Verifier.from_vkey(GO_VERIFIER_KEY))


def test_signatures_by_unknown_keys_are_ignored_next_to_a_trusted_one() -> None:
    other = Signer("witness.example", Ed25519PrivateKey.generate())
    cosigned = GO_NOTE + other.sign(GO_TEXT).split("\n\n", 1)[1]
    assert open_note(cosigned, Verifier.from_vkey(GO_VERIFIER_KEY)) == GO_TEXT
    assert open_note(cosigned, other.verifier) == GO_TEXT


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+AhpcQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not Ed25519
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(InvalidNote):
        Verifier.from_vkey(vkey)


def test_a_checkpoint_body_is_origin_size_and_base64_root() -> None:
    root = bytes(range(32))
    checkpoint = checkpoints.Checkpoint("example.com/log", 42, root)
    assert checkpoint.body() == f"example.com/log\n42\n{base64.b64encode(root).decode()}\n"
    assert checkpoints.parse_body(checkpoint.body()) == checkpoint


def test_a_signed_checkpoint_opens_only_for_its_key_and_origin() -> None:
    signer = Signer("example.com/log", Ed25519PrivateKey.generate())
    signed = checkpoints.sign(checkpoints.Checkpoint("example.com/log", 7, bytes(32)), signer)

    opened = checkpoints.open_checkpoint(signed.note, signer.verifier, origin="example.com/log")

    assert opened == signed
    assert signed.note.split("\n")[:4] == [
        "example.com/log",
        "7",
        base64.b64encode(bytes(32)).decode(),
        "",
    ]
    assert signed.note.split("\n")[4].startswith("\u2014 example.com/log ")
    with pytest.raises(InvalidNote, match="not of"):
        checkpoints.open_checkpoint(signed.note, signer.verifier, origin="other.example/log")
    forged = signed.note.replace("\n7\n", "\n6\n")
    with pytest.raises(InvalidNote):
        checkpoints.open_checkpoint(forged, signer.verifier)


@pytest.mark.parametrize(
    "body",
    [
        "log\n007\nAAAA\n",
        "log\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "log\n1\n" + base64.b64encode(bytes(31)).decode() + "\n",
        "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "log\n1\n",
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(InvalidNote):
        checkpoints.parse_body(body)
