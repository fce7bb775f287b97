"""The ops page's configuration, read from the environment at start-up.

The ops service has no store and no topics of its own: it scrapes the services' ``/metrics``
(``OPS_METRICS_TARGETS``), reads an appeal's trail from the audit service's REST API
(``OPS_AUDIT_URL``) with the searching person's own token, and reads traces from the trace
backend's query API (``OPS_TRACE_UI_URL``). It answers only authenticated callers, so, like every
service, it needs ``AUTH_JWKS_FILE``.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from appeals_runtime.auth import AuthSettings
from appeals_runtime.settings import http_url


def parse_targets(value: str) -> dict[str, str]:
    """``intake=http://127.0.0.1:8080/metrics,routing=...`` as {name: url}."""
    targets: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, url = (piece.strip() for piece in item.partition("="))
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ValueError(f"{item!r} is not name=http(s)://host:port/metrics")
        if name in targets:
            raise ValueError(f"target {name!r} is named twice")
        targets[name] = url
    return targets


class OpsSettings(AuthSettings):
    http_port: int = Field(default=8084, validation_alias="OPS_HTTP_PORT")
    # Whose /metrics the page's figures come from, how often they are scraped while someone
    # watches, and how much history the charts keep (in memory).
    ops_metrics_targets: str = ""
    ops_scrape_interval_s: float = Field(default=2.0, gt=0)
    ops_history_s: float = Field(default=900.0, gt=0)
    # Where trace links point and spans are read (Jaeger's UI and query API by default).
    ops_trace_ui_url: str = "http://127.0.0.1:16686"
    # The audit service whose log the page's search reads.
    ops_audit_url: str = "http://127.0.0.1:8083"

    @field_validator("ops_metrics_targets")
    @classmethod
    def _targets_parse(cls, value: str) -> str:
        parse_targets(value)
        return value

    @field_validator("ops_trace_ui_url", "ops_audit_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return http_url(value)

    @property
    def metrics_targets(self) -> dict[str, str]:
        return parse_targets(self.ops_metrics_targets)
