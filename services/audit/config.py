"""Audit's configuration, read from the environment at start-up."""

from __future__ import annotations

from pydantic import Field

from appeals_runtime.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    http_port: int = Field(default=8083, validation_alias="AUDIT_HTTP_PORT")
