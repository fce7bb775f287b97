"""Intake's configuration, read from the environment at start-up."""

from __future__ import annotations

from pydantic import Field

from appeals_runtime.auth import AuthSettings

# Consumer groups of intake: one builds the status view, one takes surfaces' request events.
STATUS_CONSUMER_GROUP = "intake-status"
REQUESTS_CONSUMER_GROUP = "intake-requests"


class IntakeSettings(AuthSettings):
    http_port: int = Field(default=8080, validation_alias="INTAKE_HTTP_PORT")
    grpc_port: int = Field(default=50051, validation_alias="INTAKE_GRPC_PORT")
