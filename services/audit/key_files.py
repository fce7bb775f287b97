"""The audit's secrets, read from files outside the store; development ones made on first use.

A configured file that is missing is an error (production must never sign with a key it just
made up). Only the default paths under the state dir, named ``DEV-ONLY-...``, are generated, each
created atomically (written aside, then linked into place) so two processes starting together end
up with the same key.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appeals_proofs.signed_note import Signer
from services.audit.config import AuditLogSettings
from services.audit.privacy import sealing

log = logging.getLogger(__name__)


class KeyFileError(Exception):
    """A configured key file is missing or unusable."""


def _create_once(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, aside = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.chmod(aside, 0o600)
        with contextlib.suppress(FileExistsError):
            # Fails if another process created it first: theirs wins, ours is dropped.
            os.link(aside, path)
    finally:
        os.unlink(aside)


def _read(path: Path, *, generate: bytes | None, what: str) -> bytes:
    if not path.exists():
        if generate is None:
            raise KeyFileError(f"{what} file {path} does not exist")
        _create_once(path, generate)
        log.warning(
            "generated a DEVELOPMENT-ONLY %s; set the variable to a managed key in production",
            what,
            extra={"path": str(path)},
        )
    return path.read_bytes()


def load_signer(settings: AuditLogSettings) -> Signer:
    """The checkpoint signer; its key name is the log's origin."""
    generated = None
    if settings.audit_signing_key_file is None:
        generated = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    pem = _read(settings.signing_key_file, generate=generated, what="checkpoint signing key")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as error:
        raise KeyFileError(f"{settings.signing_key_file} holds no PEM private key") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{settings.signing_key_file} is not an Ed25519 key")
    return Signer(settings.origin, key)


def load_secrets(settings: AuditLogSettings) -> sealing.Secrets:
    generated = None
    if settings.audit_secret_key_file is None:
        generated = base64.b64encode(os.urandom(sealing.KEY_SIZE)) + b"\n"
    text = _read(settings.secret_key_file, generate=generated, what="audit master secret")
    try:
        master = base64.b64decode(text.strip(), validate=True)
        return sealing.derive_secrets(master)
    except ValueError as error:  # binascii.Error is a ValueError
        raise KeyFileError(f"{settings.secret_key_file}: {error}") from error
