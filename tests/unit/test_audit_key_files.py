"""Secrets from files (dev ones generated once, configured ones never invented) and the
checkpoint directory outside the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appeals_proofs import checkpoints
from appeals_proofs.signed_note import Signer
from services.audit import key_files
from services.audit.config import AuditLogSettings
from services.audit.log import checkpoint_files


def settings(tmp_path: Path, **overrides: Any) -> AuditLogSettings:
    return AuditLogSettings(
        audit_state_dir=tmp_path / "state", mongodb_database="appeals_x", **overrides
    )


def test_dev_keys_are_generated_once_and_reused(tmp_path: Path) -> None:
    config = settings(tmp_path)

    first = key_files.load_signer(config)
    again = key_files.load_signer(config)
    secrets = key_files.load_secrets(config)

    assert config.uses_dev_keys
    assert first.verifier.vkey == again.verifier.vkey
    assert first.name == "appeals-pipeline.local/audit/appeals_x"
    assert key_files.load_secrets(config) == secrets
    assert config.signing_key_file.name.startswith("DEV-ONLY")
    assert oct(config.signing_key_file.stat().st_mode & 0o777) == "0o600"


def test_a_configured_key_file_that_is_missing_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    config = settings(tmp_path, audit_signing_key_file=tmp_path / "prod.pem")
    with pytest.raises(key_files.KeyFileError, match="does not exist"):
        key_files.load_signer(config)
    assert not (tmp_path / "prod.pem").exists()


def test_a_configured_secret_that_is_not_base64_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_text("not base64 at all!")
    with pytest.raises(key_files.KeyFileError):
        key_files.load_secrets(settings(tmp_path, audit_secret_key_file=secret))


def test_checkpoints_are_written_per_size_with_the_newest_as_checkpoint(tmp_path: Path) -> None:
    signer = Signer("log.example", Ed25519PrivateKey.generate())
    directory = tmp_path / "cp"
    notes = {
        size: checkpoints.sign(checkpoints.Checkpoint("log.example", size, bytes(32)), signer)
        for size in (3, 10, 7)
    }
    for signed in notes.values():
        checkpoint_files.write(directory, signed)

    assert sorted(checkpoint_files.sizes(directory)) == [3, 7, 10]
    assert checkpoint_files.notes(directory) == [notes[3].note, notes[7].note, notes[10].note]
    assert (directory / "checkpoint").read_text() == notes[10].note
    assert checkpoint_files.newest_note(directory) == notes[10].note
    assert (directory / "000000000007.checkpoint").exists()
    assert not list(directory.glob(".tmp-*"))


def test_the_checkpoint_directory_is_one_per_origin(tmp_path: Path) -> None:
    config = settings(tmp_path, audit_checkpoint_dir=tmp_path / "anchor")
    assert config.checkpoint_dir == tmp_path / "anchor" / "appeals-pipeline.local_audit_appeals_x"
