"""Audit's configuration, read from the environment at start-up.

Audit answers only authenticated ops callers, so it needs ``AUTH_JWKS_FILE`` and refuses to start
without it.
"""

from __future__ import annotations

from pydantic import Field

from appeals_runtime.auth import AuthSettings

# One group for every audit instance: they share the topics' partitions between them.
CONSUMER_GROUP = "audit"


class AuditSettings(AuthSettings):
    http_port: int = Field(default=8083, validation_alias="AUDIT_HTTP_PORT")
