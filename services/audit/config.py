"""Audit's configuration, read from the environment at start-up.

The service answers only authenticated callers, so it needs ``AUTH_JWKS_FILE`` and refuses to start
without it; the operator CLI (``appeals audit ...``) is one of those callers. What the log itself
needs (store, keys, checkpoint files) is :class:`AuditLogSettings`, which the benchmark and the
tests use to open a log without the HTTP side.

Secrets live in files named here, never in the store: the checkpoint signing key
(``AUDIT_SIGNING_KEY_FILE``, Ed25519 PKCS#8 PEM) and the master secret that protects personal data
(``AUDIT_SECRET_KEY_FILE``, 32+ random bytes, base64). Unset, both are generated on first use under
``AUDIT_STATE_DIR`` as clearly named DEVELOPMENT-ONLY files; production sets both.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field

from appeals_runtime.auth import AuthSettings
from appeals_runtime.settings import ServiceSettings

# One group for every audit instance: they share the topics' partitions between them.
CONSUMER_GROUP = "audit"


def _default_state_dir() -> Path:
    # `make run` keeps per-checkout state in .local/ (git-ignored); APPEALS_STATE_DIR moves it.
    return Path(os.environ.get("APPEALS_STATE_DIR", ".local")) / "audit"


class AuditLogSettings(ServiceSettings):
    audit_state_dir: Path = Field(default_factory=_default_state_dir)
    # The log's name in its checkpoints (C2SP origin). Default: one per database.
    audit_log_origin: str | None = None
    audit_signing_key_file: Path | None = None
    audit_secret_key_file: Path | None = None
    # Where signed checkpoints are written outside the store (a directory per origin inside).
    audit_checkpoint_dir: Path | None = None
    audit_checkpoint_interval_s: float = Field(default=30.0, gt=0)

    @property
    def origin(self) -> str:
        return self.audit_log_origin or f"appeals-pipeline.local/audit/{self.mongodb_database}"

    @property
    def checkpoint_dir(self) -> Path:
        base = self.audit_checkpoint_dir or self.audit_state_dir / "checkpoints"
        return base / re.sub(r"[^A-Za-z0-9._-]", "_", self.origin)

    @property
    def signing_key_file(self) -> Path:
        return self.audit_signing_key_file or self.audit_state_dir / "DEV-ONLY-checkpoint-key.pem"

    @property
    def secret_key_file(self) -> Path:
        return self.audit_secret_key_file or self.audit_state_dir / "DEV-ONLY-master-secret.key"

    @property
    def uses_dev_keys(self) -> bool:
        return self.audit_signing_key_file is None or self.audit_secret_key_file is None


class AuditSettings(AuthSettings, AuditLogSettings):
    http_port: int = Field(default=8083, validation_alias="AUDIT_HTTP_PORT")
    # Intake, whose records of what it acknowledged reconciliation reads beside the topics
    # (with the asking operator's token); empty: the topics only.
    audit_intake_url: str = "http://127.0.0.1:8080"
