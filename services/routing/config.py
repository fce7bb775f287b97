"""Routing's configuration, read from the environment at start-up."""

from __future__ import annotations

from pydantic import Field

from appeals_runtime.auth import AuthSettings

CONSUMER_GROUP = "routing"


class RoutingSettings(AuthSettings):
    http_port: int = Field(default=8081, validation_alias="ROUTING_HTTP_PORT")
    grpc_port: int = Field(default=50052, validation_alias="ROUTING_GRPC_PORT")
    # How long a claim holds without a decision before the case returns to its queue.
    claim_lease_s: int = Field(default=900, ge=10, validation_alias="ROUTING_CLAIM_LEASE_S")
    # How often an agent's case stream looks for new cases.
    offer_poll_s: float = Field(default=0.5, gt=0, validation_alias="ROUTING_OFFER_POLL_S")
