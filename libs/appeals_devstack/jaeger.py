"""Jaeger v2 all-in-one (in-memory storage): the trace backend of local runs and tests.

The services export spans to its OTLP/gRPC port (``OTEL_EXPORTER_OTLP_ENDPOINT``); tests read
them back through its query API with :class:`JaegerQuery`, the same API Jaeger's UI and Grafana's
Jaeger datasource use.
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import httpx

from appeals_devstack import processes
from appeals_devstack.paths import DEPLOY_LOCAL, jaeger_binary


@dataclass(frozen=True)
class JaegerPorts:
    otlp_grpc: int = 4317
    otlp_http: int = 4318
    query: int = 16686
    query_grpc: int = 16685
    # Jaeger's own metrics (Prometheus format), scraped as the `jaeger` job.
    metrics: int = 14269

    @classmethod
    def free(cls) -> JaegerPorts:
        return cls(*(processes.free_port() for _ in range(5)))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JaegerPorts:
        defaults = cls()
        return cls(
            otlp_grpc=int(env.get("APPEALS_LOCAL_OTLP_GRPC_PORT", defaults.otlp_grpc)),
            otlp_http=int(env.get("APPEALS_LOCAL_OTLP_HTTP_PORT", defaults.otlp_http)),
            query=int(env.get("APPEALS_LOCAL_JAEGER_QUERY_PORT", defaults.query)),
            query_grpc=int(env.get("APPEALS_LOCAL_JAEGER_QUERY_GRPC_PORT", defaults.query_grpc)),
            metrics=int(env.get("APPEALS_LOCAL_JAEGER_METRICS_PORT", defaults.metrics)),
        )

    def all(self) -> list[int]:
        return [self.otlp_grpc, self.otlp_http, self.query, self.query_grpc, self.metrics]


@dataclass
class Jaeger(processes.LocalServer):
    data_dir: Path
    ports: JaegerPorts
    max_traces: int = 50_000
    binary: Path = field(default_factory=jaeger_binary)
    process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_endpoint(self) -> str:
        # The http:// scheme tells the OTLP/gRPC exporter to connect without TLS (insecure).
        return f"http://127.0.0.1:{self.ports.otlp_grpc}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.query}"

    @property
    def metrics_target(self) -> str:
        return f"127.0.0.1:{self.ports.metrics}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "jaeger.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "jaeger.yaml"

    def query(self) -> JaegerQuery:
        return JaegerQuery(self.query_url)

    def start(self) -> None:
        if not self.binary.exists():
            raise RuntimeError(f"Jaeger binary missing at {self.binary}: run `make jaeger` first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        template = Template((DEPLOY_LOCAL / "jaeger.yaml.template").read_text())
        self.config_path.write_text(
            template.substitute(
                otlp_grpc_port=self.ports.otlp_grpc,
                otlp_http_port=self.ports.otlp_http,
                query_port=self.ports.query,
                query_grpc_port=self.ports.query_grpc,
                metrics_port=self.ports.metrics,
                max_traces=self.max_traces,
            )
        )
        self._launch([str(self.binary), f"--config=file:{self.config_path}"])

    def wait_ready(self, timeout: float = 30.0) -> None:
        query = self.query()
        self._wait(
            lambda: processes.port_open(self.ports.otlp_grpc) and query.answers(),
            timeout=timeout,
            what=f"Jaeger on :{self.ports.query}",
        )


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    operation: str
    service: str
    # Span ids this span refers to, by Jaeger reference type: the parent is CHILD_OF, an
    # OpenTelemetry span link is FOLLOWS_FROM.
    child_of: tuple[str, ...]
    follows_from: tuple[str, ...]
    # The traces the FOLLOWS_FROM references point into (a link usually leaves the trace).
    follows_from_traces: tuple[str, ...]
    tags: Mapping[str, Any]
    start_us: int
    duration_us: int


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: tuple[Span, ...]

    def services(self) -> set[str]:
        return {span.service for span in self.spans}

    def named(self, operation: str) -> list[Span]:
        return [span for span in self.spans if span.operation == operation]

    def span(self, operation: str) -> Span:
        """The one span named ``operation`` (fails when there is none or several)."""
        found = self.named(operation)
        if len(found) != 1:
            raise LookupError(f"{len(found)} spans named {operation!r} in trace {self.trace_id}")
        return found[0]

    @functools.cached_property
    def _by_id(self) -> dict[str, Span]:
        return {candidate.span_id: candidate for candidate in self.spans}

    def parent(self, span: Span) -> Span | None:
        return next((self._by_id[ref] for ref in span.child_of if ref in self._by_id), None)

    def ancestors(self, span: Span) -> Iterator[Span]:
        """The span's parent, its parent's parent, ... up to the root."""
        current = self.parent(span)
        while current is not None:
            yield current
            current = self.parent(current)

    def service_edges(self) -> set[tuple[str, str]]:
        """(parent service, child service) for every parent/child pair across services."""
        edges = set()
        for span in self.spans:
            parent = self.parent(span)
            if parent is not None and parent.service != span.service:
                edges.add((parent.service, span.service))
        return edges


def trace_id_hex(trace_id: int | str) -> str:
    """Jaeger's spelling of a trace id: 32 lowercase hex digits."""
    return f"{trace_id:032x}" if isinstance(trace_id, int) else trace_id.lower().rjust(32, "0")


@dataclass(frozen=True)
class JaegerQuery:
    """Jaeger's HTTP query API (``/api/services``, ``/api/traces``), as the UI calls it."""

    base_url: str
    timeout: float = 5.0

    def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", params=params, timeout=self.timeout)

    def answers(self) -> bool:
        try:
            return self._get("/api/services").status_code == 200
        except httpx.HTTPError:
            return False

    def services(self) -> list[str]:
        response = self._get("/api/services")
        response.raise_for_status()
        return sorted(response.json()["data"] or [])

    def trace(self, trace_id: int | str) -> Trace | None:
        """The trace as stored now, or None when Jaeger has no span of it (yet)."""
        response = self._get(f"/api/traces/{trace_id_hex(trace_id)}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json()["data"]
        return _trace(data[0]) if data else None

    def find(
        self, service: str, *, operation: str | None = None, limit: int = 20, lookback: str = "1h"
    ) -> list[Trace]:
        params: dict[str, str | int] = {"service": service, "limit": limit, "lookback": lookback}
        if operation:
            params["operation"] = operation
        response = self._get("/api/traces", params)
        response.raise_for_status()
        return [_trace(item) for item in response.json()["data"] or []]

    def wait_for_trace(
        self, trace_id: int | str, *, min_spans: int = 1, timeout: float = 30.0
    ) -> Trace:
        """Poll until the trace has ``min_spans`` spans: exporters batch, so spans arrive late."""
        deadline = time.monotonic() + timeout
        found = None
        while time.monotonic() < deadline:
            found = self.trace(trace_id)
            if found is not None and len(found.spans) >= min_spans:
                return found
            time.sleep(0.25)
        seen = len(found.spans) if found else 0
        raise TimeoutError(
            f"trace {trace_id_hex(trace_id)}: {seen} of {min_spans} spans after {timeout:.0f}s"
        )


def _trace(data: Mapping[str, Any]) -> Trace:
    services = {key: process["serviceName"] for key, process in data["processes"].items()}
    spans = []
    for raw in data["spans"]:
        refs = raw.get("references") or []
        spans.append(
            Span(
                trace_id=raw["traceID"],
                span_id=raw["spanID"],
                operation=raw["operationName"],
                service=services.get(raw["processID"], ""),
                child_of=tuple(r["spanID"] for r in refs if r["refType"] == "CHILD_OF"),
                follows_from=tuple(r["spanID"] for r in refs if r["refType"] == "FOLLOWS_FROM"),
                follows_from_traces=tuple(
                    r["traceID"] for r in refs if r["refType"] == "FOLLOWS_FROM"
                ),
                tags={tag["key"]: tag["value"] for tag in raw.get("tags") or []},
                start_us=int(raw["startTime"]),
                duration_us=int(raw["duration"]),
            )
        )
    return Trace(trace_id=data["traceID"], spans=tuple(spans))
