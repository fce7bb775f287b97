"""Configuration from the environment, shared by every service.

Each service subclasses :class:`ServiceSettings` with its own ports. :func:`load_settings` turns a
missing or malformed variable into one clear message at start-up instead of a stack trace later.
"""

from __future__ import annotations

import sys
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


def is_http_url(value: str) -> bool:
    return urlsplit(value).scheme in ("http", "https")


def http_url(value: str) -> str:
    """A setting that names another service or a provider: an http(s) URL, without the trailing
    slash (paths are appended to it); a ValueError naming the value otherwise."""
    if not is_http_url(value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


class ServiceSettings(BaseSettings):
    """Settings every service has. Variable names are the field names in upper case."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=False)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = "appeals"
    # Where the service listens; 0.0.0.0 in containers, loopback on a laptop.
    bind_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    # OTLP/gRPC endpoint for traces, e.g. http://collector:4317. Unset: no trace export.
    otel_exporter_otlp_endpoint: str | None = None
    # OTLP/gRPC endpoint for metrics too (a collector that takes them); unset: metrics are only
    # scraped from /metrics. Separate because a trace backend (Jaeger) rejects metrics.
    otel_exporter_otlp_metrics_endpoint: str | None = None
    # New traces this process starts per second at most when it exports them (bursts of five
    # seconds' worth); traces begun upstream keep their decision. 0: only those.
    trace_starts_per_s: float = Field(default=10.0, ge=0)
    # How long a publish may wait for the broker's acknowledgement before the caller gets 503.
    kafka_publish_timeout_s: float = Field(default=10.0, gt=0)
    # Partitions given to topics this process creates (local runs and tests only).
    kafka_topic_partitions: int = Field(default=3, ge=1)
    # How often gauges read from the broker (DLQ sizes) are refreshed.
    metrics_refresh_s: float = Field(default=15.0, gt=0)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class SettingsError(SystemExit):
    """Raised (and exits the process) when the environment does not configure the service."""


def describe_validation_error(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        names = ".".join(str(part) for part in problem["loc"]) or "settings"
        lines.append(f"  {names.upper()}: {problem['msg']}")
    return "\n".join(lines)


def load_settings(settings_type: type[SettingsT]) -> SettingsT:
    """Read settings from the environment or exit with a message naming each bad variable."""
    try:
        return settings_type()
    except ValidationError as error:
        message = (
            f"{settings_type.__name__}: the environment does not configure this service:\n"
            f"{describe_validation_error(error)}"
        )
        print(message, file=sys.stderr)
        raise SettingsError(2) from error
