"""Notifications' configuration, read from the environment at start-up."""

from __future__ import annotations

from pydantic import Field

from appeals_runtime.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    http_port: int = Field(default=8082, validation_alias="NOTIFICATIONS_HTTP_PORT")
