"""Privacy with verifiability: pseudonyms in the clear, personal data sealed per person. Pure.

An entry is hashed into the tree forever, so nothing in it may be something we could be asked to
erase. Events carry no personal data today: intake keeps the appellant's user id, contact details,
statement and attachments, and events name the person by ``appellant_pseudonym`` (intake's keyed
hash). They enter the log as they are.

Events in the layout from before (:mod:`services.audit.privacy.legacy`: the whole submission in a
submitted event or a case package), from a producer not yet upgraded, enter it split in two:

* a *redacted* event: the submission replaced by its facts, and ``appellant_pseudonym`` set to
  a keyed hash (HMAC-SHA-256) of platform and user id unless intake set one, so one person's
  appeals still join up without naming them;
* a *sealed* blob: the user id, contact details, statement and attachment links, encrypted with
  AES-256-GCM under a data key that belongs to that pseudonym alone. The nonce and ciphertext
  are part of the entry, so they are hashed.

Erasing the person's data key (crypto-shredding) makes the blob unreadable for good, while the
entry, its hash and every proof stay exactly as they were. Data keys are stored wrapped
(AES-256-GCM) under a key-encryption key; the KEK and the pseudonym key come from one master
secret held outside the store (HKDF-SHA-256 with distinct labels).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2, events_pb2
from services.audit.privacy import legacy

ALGORITHM = "A256GCM"
NONCE_SIZE = 12
KEY_SIZE = 32


class Erased(Exception):  # noqa: N818
    """The data key is gone (crypto-shredded) or never matched: the sealed data is unreadable."""


@dataclass(frozen=True)
class Secrets:
    key_encryption_key: bytes
    pseudonym_key: bytes


def derive_secrets(master: bytes) -> Secrets:
    if len(master) < KEY_SIZE:
        raise ValueError(f"the audit master secret needs at least {KEY_SIZE} bytes")

    def derive(label: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=label).derive(
            master
        )

    return Secrets(derive(b"appeals-audit kek v1"), derive(b"appeals-audit pseudonym v1"))


def pseudonym(secrets: Secrets, *, platform: int, user_id: str) -> str:
    """A stable, keyed pseudonym of a person on a platform; meaningless without the key."""
    message = f"{platform}\x1f{user_id}".encode()
    return "ps_" + hmac.new(secrets.pseudonym_key, message, hashlib.sha256).hexdigest()[:32]


def appeal_pseudonym(secrets: Secrets, appeal_id: str) -> str:
    """The subject of personal data that names no user (keyed by the appeal instead)."""
    digest = hmac.new(secrets.pseudonym_key, b"appeal\x1f" + appeal_id.encode(), hashlib.sha256)
    return "pa_" + digest.hexdigest()[:32]


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_key(secrets: Secrets, data_key: bytes, *, subject: str) -> str:
    nonce = os.urandom(NONCE_SIZE)
    sealed = AESGCM(secrets.key_encryption_key).encrypt(nonce, data_key, _key_context(subject))
    return base64.b64encode(nonce + sealed).decode()


def unwrap_key(secrets: Secrets, wrapped: str, *, subject: str) -> bytes:
    raw = base64.b64decode(wrapped)
    try:
        return AESGCM(secrets.key_encryption_key).decrypt(
            raw[:NONCE_SIZE], raw[NONCE_SIZE:], _key_context(subject)
        )
    except InvalidTag as error:
        raise Erased(
            f"the data key of {subject} does not unwrap with this master secret"
        ) from error


def _key_context(subject: str) -> bytes:
    return b"appeals-audit data key\x1f" + subject.encode()


def _seal_context(subject: str, event_id: str) -> bytes:
    # Binds the ciphertext to its person and its event: it cannot be moved to another entry.
    return b"appeals-audit sealed\x1f" + subject.encode() + b"\x1f" + event_id.encode()


def seal(data_key: bytes, plaintext: bytes, *, subject: str, event_id: str) -> dict[str, str]:
    nonce = os.urandom(NONCE_SIZE)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _seal_context(subject, event_id))
    return {
        "subject": subject,
        "alg": ALGORITHM,
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }


def open_sealed(data_key: bytes | None, sealed: Mapping[str, str], *, event_id: str) -> bytes:
    if data_key is None:
        raise Erased(f"the data key of {sealed['subject']} was erased")
    try:
        return AESGCM(data_key).decrypt(
            base64.b64decode(sealed["nonce"]),
            base64.b64decode(sealed["ciphertext"]),
            _seal_context(sealed["subject"], event_id),
        )
    except InvalidTag as error:
        raise Erased("the sealed data does not open with this key") from error


@dataclass(frozen=True)
class Separated:
    """An event with its personal data taken out."""

    redacted: events_pb2.AppealEvent
    # The removed fields as an AppealSubmission (deterministic bytes); None when there were none.
    personal: bytes | None
    subject: str | None


def _carrier(event: events_pb2.AppealEvent) -> legacy.Carrier | None:
    """The message of an event that carried a submission in the old layout: a submitted event,
    or the case package that goes up with an escalation."""
    kind = event.WhichOneof("payload")
    if kind == "submitted":
        return event.submitted
    if kind == "escalated" and event.escalated.HasField("package"):
        return event.escalated.package
    return None


def separate_personal(event: events_pb2.AppealEvent, secrets: Secrets) -> Separated:
    """Split an event into what the log keeps in the clear and what it seals, and for whom."""
    redacted = events_pb2.AppealEvent()
    redacted.CopyFrom(event)
    carrier = _carrier(redacted)
    submission = legacy.legacy_submission(carrier) if carrier is not None else None
    if carrier is None or submission is None:
        return Separated(redacted, None, None)  # today's events: nothing personal in them
    if not carrier.HasField("facts"):
        carrier.facts.CopyFrom(submission_facts(submission))
    # Drops field 1 (and only unknown fields of a producer that predates every newer field).
    carrier.DiscardUnknownFields()
    appellant = submission.appellant
    personal = appeal_pb2.AppealSubmission(statement=submission.statement)
    personal.appellant.user_id = appellant.user_id
    personal.appellant.contact.CopyFrom(appellant.contact)
    personal.attachments.extend(submission.attachments)
    has_personal = bool(
        appellant.user_id
        or appellant.contact.ByteSize()
        or submission.statement
        or submission.attachments
    )
    given = redacted.submitted.appellant_pseudonym if redacted.HasField("submitted") else ""
    if given:
        subject = given
    elif appellant.user_id:
        subject = pseudonym(secrets, platform=submission.platform, user_id=appellant.user_id)
    else:
        subject = appeal_pseudonym(secrets, event.appeal_id)
    if redacted.HasField("submitted"):
        redacted.submitted.appellant_pseudonym = subject
    return Separated(
        redacted=redacted,
        personal=personal.SerializeToString(deterministic=True) if has_personal else None,
        subject=subject if has_personal else None,
    )
