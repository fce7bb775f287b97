"""Notifications' configuration, read from the environment at start-up.

Every provider endpoint and credential is configuration. A channel whose provider is not
configured either delivers to the local recording sink (the four platform adapters) or is not
offered at all (email without ``NOTIFICATIONS_SMTP_HOST``, the webhook without
``NOTIFICATIONS_WEBHOOK_URL``). Inconsistent settings stop the service at start-up, naming the
variable, rather than failing on the first appellant.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import time
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator

from appeals import platforms
from appeals_runtime.auth import AuthSettings
from appeals_runtime.intake_client import IntakeClientSettings
from appeals_runtime.settings import is_http_url

# One group for every notifications process: each lifecycle event is handled by one member.
CONSUMER_GROUP = "notifications"
# The retry scheduler is its own group, so waiting retries never hold up lifecycle events.
RETRY_CONSUMER_GROUP = "notifications-retries"

# LOCAL DEVELOPMENT ONLY. Accepted only while the webhook points at this machine, so a deployment
# that forgets NOTIFICATIONS_WEBHOOK_SECRET refuses to start instead of signing with a known key.
DEV_WEBHOOK_SECRET = "dev-only-webhook-secret-never-use-in-production"  # noqa: S105

# Each platform's own channel (declared in appeals/platforms.yaml).
PLATFORM_CHANNELS = dict(platforms.CHANNELS)
CHANNELS = frozenset({*PLATFORM_CHANNELS.values(), *platforms.SHARED_CHANNELS})

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class PlatformProvider:
    """A platform API that takes the channel's payloads: its endpoint and bearer token."""

    url: str
    token: SecretStr


class NotificationsSettings(AuthSettings, IntakeClientSettings):
    """Needs ``AUTH_JWKS_FILE``: the API shows what people were told, so the service refuses to
    start without a way to verify who is asking; and ``NOTIFICATIONS_INTAKE_TOKEN_FILE``: where
    to reach a person is read from intake at each send. Everything else has a working local
    default."""

    intake_token_file: FilePath = Field(validation_alias="NOTIFICATIONS_INTAKE_TOKEN_FILE")
    # How long an appeal's particulars read from intake are held in memory for its next notice,
    # and for how many appeals at most (0 turns holding off: every notice asks intake).
    particulars_hold_s: float = Field(
        default=120.0, ge=0, validation_alias="NOTIFICATIONS_PARTICULARS_HOLD_S"
    )
    particulars_held: int = Field(
        default=2000, ge=0, validation_alias="NOTIFICATIONS_PARTICULARS_HELD"
    )

    http_port: int = Field(default=8082, validation_alias="NOTIFICATIONS_HTTP_PORT")
    # DEVELOPMENT ONLY: keep verification codes readable in their sent records (the local
    # recording sinks' outbox, which `make run` and the tests read); off, the code is masked.
    keep_code_text: bool = Field(default=False, validation_alias="NOTIFICATIONS_KEEP_CODE_TEXT")
    consumer_group: str = Field(
        default=CONSUMER_GROUP, min_length=1, validation_alias="NOTIFICATIONS_CONSUMER_GROUP"
    )
    retry_consumer_group: str = Field(
        default=RETRY_CONSUMER_GROUP,
        min_length=1,
        validation_alias="NOTIFICATIONS_RETRY_CONSUMER_GROUP",
    )
    # Where a lifecycle consumer group with no committed offset starts. "earliest" skips
    # nothing; "latest" is for a deployment with a fresh store that must not tell everyone in the
    # topic's history about their old appeals again.
    start_from: Literal["earliest", "latest"] = Field(
        default="earliest", validation_alias="NOTIFICATIONS_START_FROM"
    )

    # Which channel each platform's appellants hear back on, e.g. {"horizon": "webhook"} for a
    # surface that delivers its own notifications.
    platform_channels: dict[str, str] = Field(
        default_factory=lambda: dict(PLATFORM_CHANNELS),
        validation_alias="NOTIFICATIONS_PLATFORM_CHANNELS",
    )
    # Tried in this order after the person's preferred channel and their platform's channel
    # have failed permanently (or cannot reach them).
    fallback_channels: list[str] = Field(
        default_factory=lambda: ["email"], validation_alias="NOTIFICATIONS_FALLBACK_CHANNELS"
    )

    # Each platform channel's provider, from NOTIFICATIONS_<PLATFORM>_URL and _TOKEN (e.g.
    # NOTIFICATIONS_WHATSAPP_URL: the Cloud API messages endpoint,
    # https://graph.facebook.com/v21.0/<phone-id>/messages); unset means the local recording
    # sink. Read for every declared platform by ``_platform_providers``.
    platform_providers: dict[str, PlatformProvider] = Field(default_factory=dict)
    provider_timeout_s: float = Field(
        default=5.0, gt=0, validation_alias="NOTIFICATIONS_PROVIDER_TIMEOUT_S"
    )

    # Email over SMTP; unset host means no email channel.
    smtp_host: str | None = Field(default=None, validation_alias="NOTIFICATIONS_SMTP_HOST")
    smtp_port: int = Field(default=587, gt=0, lt=65536, validation_alias="NOTIFICATIONS_SMTP_PORT")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", validation_alias="NOTIFICATIONS_SMTP_SECURITY"
    )
    smtp_username: str | None = Field(default=None, validation_alias="NOTIFICATIONS_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(
        default=None, validation_alias="NOTIFICATIONS_SMTP_PASSWORD"
    )
    smtp_timeout_s: float = Field(
        default=10.0, gt=0, validation_alias="NOTIFICATIONS_SMTP_TIMEOUT_S"
    )
    email_from: str | None = Field(default=None, validation_alias="NOTIFICATIONS_EMAIL_FROM")

    # Signed webhook for surfaces that deliver themselves; unset URL means no webhook channel.
    webhook_url: str | None = Field(default=None, validation_alias="NOTIFICATIONS_WEBHOOK_URL")
    webhook_secret: SecretStr = Field(
        default=SecretStr(DEV_WEBHOOK_SECRET), validation_alias="NOTIFICATIONS_WEBHOOK_SECRET"
    )

    # Retries of transient failures: exponential backoff with jitter, then permanent.
    retry_max_attempts: int = Field(
        default=6, ge=1, validation_alias="NOTIFICATIONS_RETRY_MAX_ATTEMPTS"
    )
    retry_initial_backoff_s: float = Field(
        default=5.0, gt=0, validation_alias="NOTIFICATIONS_RETRY_INITIAL_BACKOFF_S"
    )
    retry_max_backoff_s: float = Field(
        default=900.0, gt=0, validation_alias="NOTIFICATIONS_RETRY_MAX_BACKOFF_S"
    )
    # How often the retry scheduler looks at its clock; also bounds how late a retry can be.
    retry_tick_s: float = Field(default=1.0, gt=0, validation_alias="NOTIFICATIONS_RETRY_TICK_S")
    retry_concurrency: int = Field(
        default=8, ge=1, validation_alias="NOTIFICATIONS_RETRY_CONCURRENCY"
    )
    # Retries held in memory at once; beyond it the retry topic is paused (backpressure).
    retry_max_waiting: int = Field(
        default=10_000, ge=1, validation_alias="NOTIFICATIONS_RETRY_MAX_WAITING"
    )

    # Per-person limits for non-urgent messages (decisions and requests for information always go).
    daily_limit: int = Field(default=5, ge=1, validation_alias="NOTIFICATIONS_DAILY_LIMIT")
    # "HH:MM-HH:MM" in the person's time zone; empty turns quiet hours off.
    quiet_hours: str = Field(default="22:00-08:00", validation_alias="NOTIFICATIONS_QUIET_HOURS")

    # Where the statement of reasons sends people for redress.
    dispute_settlement_url: str = Field(
        default="https://digital-strategy.ec.europa.eu/en/policies/dsa-out-court-dispute-settlement",
        validation_alias="NOTIFICATIONS_DISPUTE_SETTLEMENT_URL",
    )
    oversight_board_url: str = Field(
        default="https://www.oversightboard.com/appeals-process/",
        validation_alias="NOTIFICATIONS_OVERSIGHT_BOARD_URL",
    )
    # How often the DLQ size and retry backlog gauges are refreshed.
    metrics_refresh_s: float = Field(
        default=15.0, gt=0, validation_alias="NOTIFICATIONS_METRICS_REFRESH_S"
    )

    @field_validator("platform_channels")
    @classmethod
    def _known_platform_channels(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = {
            p: c for p, c in value.items() if p not in PLATFORM_CHANNELS or c not in CHANNELS
        }
        if unknown:
            raise ValueError(f"unknown platform or channel in {unknown}")
        return {**PLATFORM_CHANNELS, **value}

    @field_validator("fallback_channels")
    @classmethod
    def _known_fallbacks(cls, value: list[str]) -> list[str]:
        unknown = [channel for channel in value if channel not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channels {unknown}; known: {sorted(CHANNELS)}")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_shape(cls, value: str) -> str:
        if value and not _QUIET_HOURS.match(value):
            raise ValueError('must be "HH:MM-HH:MM" (e.g. "22:00-08:00") or empty')
        return value

    @model_validator(mode="before")
    @classmethod
    def _platform_providers(cls, data: Any) -> Any:
        """Each declared platform's provider variables, whatever platforms are declared (a
        field per platform could not follow the declaration)."""
        if not isinstance(data, dict):
            return data
        data, providers = dict(data), {}
        for platform in platforms.PLATFORMS:
            url_variable, token_variable = platform.provider_variables
            # Given by name (as the environment names them) or read from the environment.
            url = data.pop(url_variable, None) or os.environ.get(url_variable)
            token = data.pop(token_variable, None) or os.environ.get(token_variable)
            if isinstance(token, SecretStr):
                token = token.get_secret_value()
            if url is not None and not is_http_url(url):
                raise ValueError(f"{url_variable} must be an http(s) URL")
            if (url is None) != (token is None):
                raise ValueError(
                    f"{platform.channel}: set both the provider URL and its token "
                    f"({url_variable}, {token_variable}), or neither"
                )
            if url is not None and token is not None:
                providers[platform.channel] = PlatformProvider(url=url, token=SecretStr(token))
        return {**data, "platform_providers": providers}

    @field_validator(
        "webhook_url",
        "dispute_settlement_url",
        "oversight_board_url",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not is_http_url(value):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NotificationsSettings:
        if self.smtp_host is not None:
            if not self.email_from:
                raise ValueError(
                    "NOTIFICATIONS_EMAIL_FROM is required with NOTIFICATIONS_SMTP_HOST"
                )
            if (self.smtp_username is None) != (self.smtp_password is None):
                raise ValueError("set both NOTIFICATIONS_SMTP_USERNAME and _PASSWORD, or neither")
            if (
                self.smtp_username is not None
                and self.smtp_security == "none"
                and self.smtp_host not in _LOOPBACK_HOSTS
            ):
                raise ValueError("SMTP credentials are never sent in clear: use starttls or tls")
        if self.webhook_url is not None:
            secret = self.webhook_secret.get_secret_value()
            if len(secret) < 32:
                raise ValueError("NOTIFICATIONS_WEBHOOK_SECRET must have at least 32 characters")
            if secret == DEV_WEBHOOK_SECRET and urlsplit(self.webhook_url).hostname not in (
                _LOOPBACK_HOSTS
            ):
                raise ValueError(
                    "NOTIFICATIONS_WEBHOOK_SECRET is the local development default; "
                    "set a real secret for a webhook that leaves this machine"
                )
        offered = {*self.platform_channels.values(), *self.fallback_channels}
        if "webhook" in offered and self.webhook_url is None:
            raise ValueError("the webhook channel is used but NOTIFICATIONS_WEBHOOK_URL is not set")
        if self.retry_initial_backoff_s > self.retry_max_backoff_s:
            raise ValueError("the initial retry backoff exceeds the maximum backoff")
        return self

    def provider(self, channel: str) -> tuple[str | None, SecretStr | None]:
        """The provider endpoint and token of a platform channel (both None: recording sink)."""
        provider = self.platform_providers.get(channel)
        return (provider.url, provider.token) if provider is not None else (None, None)

    def quiet_hours_window(self) -> tuple[time, time] | None:
        if not self.quiet_hours:
            return None
        start, end = self.quiet_hours.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)
