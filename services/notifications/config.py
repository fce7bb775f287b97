"""Notifications' configuration, read from the environment at start-up."""

from __future__ import annotations

from pydantic import Field

from appeals_runtime.auth import AuthSettings

# One group for every notifications process: each lifecycle event is handled by one member.
CONSUMER_GROUP = "notifications"


class NotificationsSettings(AuthSettings):
    """Needs ``AUTH_JWKS_FILE``: the API shows what people were told, so the service refuses to
    start without a way to verify who is asking."""

    http_port: int = Field(default=8082, validation_alias="NOTIFICATIONS_HTTP_PORT")
