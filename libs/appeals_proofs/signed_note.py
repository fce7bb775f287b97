"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519. Pure, no I/O.

A note is UTF-8 text ending in a newline, a blank line, then signature lines:

    — <key name> <base64(key id || signature)>

The signature covers the text including its final newline. The key id is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || public key), 0x01 being the Ed25519 signature type. Third
parties trust a *verifier key* ``<name>+<hex key id>+<base64(0x01 || public key)>``; this is the
format Go's ``golang.org/x/mod/sumdb/note`` and the transparency-dev tools read, so any of them can
check our checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100


class InvalidNote(Exception):  # noqa: N818
    """The note is malformed or carries no valid signature by a trusted key."""


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise ValueError(f"key name {name!r} must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string a third party configures."""
        material = base64.b64encode(ED25519 + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        name, sep1, rest = vkey.strip().partition("+")
        hex_id, sep2, material = rest.partition("+")  # the base64 part may itself contain '+'
        try:
            _check_name(name)
            if not (sep1 and sep2) or len(hex_id) != 8:
                raise ValueError("expected <name>+<8 hex digits>+<base64 key>")
            raw = base64.b64decode(material, validate=True)
            wanted = bytes.fromhex(hex_id)
        except (ValueError, binascii.Error) as error:
            raise InvalidNote(f"not a verifier key: {error}") from error
        if len(raw) != 33 or raw[:1] != ED25519:
            raise InvalidNote("only Ed25519 verifier keys (type 0x01) are supported")
        verifier = cls(name, raw[1:])
        if verifier.key_id != wanted:
            raise InvalidNote("the verifier key's id does not match its name and key")
        return verifier

    def verifies(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> Verifier:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return Verifier(self.name, public)

    def sign(self, text: str) -> str:
        """The signed note of ``text`` (which must end in a newline)."""
        _check_text(text)
        signature = self.private_key.sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {blob}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise InvalidNote("note text must end in one newline and hold no blank line")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise InvalidNote("note text must hold no control characters")


def open_note(note: str, verifier: Verifier) -> str:
    """The text of ``note`` if ``verifier``'s key signed it; raises :class:`InvalidNote`."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep:
        raise InvalidNote("a signed note needs a blank line before its signatures")
    text += "\n"
    _check_text(text)
    lines = signatures.split("\n")
    if lines[-1] != "" or len(lines) > MAX_SIGNATURES + 1:
        raise InvalidNote("signature lines must end in a newline (at most 100 of them)")
    for line in lines[:-1]:
        if not line.startswith(SIGNATURE_PREFIX):
            raise InvalidNote(f"malformed signature line {line!r}")
        name, _, blob = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error as error:
            raise InvalidNote(f"signature of {name} is not base64") from error
        if len(raw) < 5:
            raise InvalidNote(f"signature of {name} is too short")
        if name != verifier.name or raw[:4] != verifier.key_id:
            continue  # another key's signature: the spec says to ignore it
        if not verifier.verifies(text.encode(), raw[4:]):
            raise InvalidNote(f"the signature by {name} does not verify")
        return text
    raise InvalidNote(f"the note carries no signature by {verifier.name}")
