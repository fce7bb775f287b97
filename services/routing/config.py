"""Routing's configuration, read from the environment at start-up."""

from __future__ import annotations

from pydantic import Field

from appeals_runtime.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    http_port: int = Field(default=8081, validation_alias="ROUTING_HTTP_PORT")
    grpc_port: int = Field(default=50052, validation_alias="ROUTING_GRPC_PORT")
