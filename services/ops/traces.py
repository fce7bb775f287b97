"""An appeal's trace for the ops page, read from the trace backend's query API.

The page links to the trace UI, but a local Jaeger built from the Go module proxy has no UI, and
an operator following an appeal should not need a second tool for the first look: the ops service
reads Jaeger's HTTP query API (``GET /api/traces/{id}``, also Grafana's Jaeger datasource
protocol) and hands the page the spans as a tree, with what it needs to draw a waterfall. Spans
hold no personal data (the services never put any there), so this is shown to any ops caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from appeals_runtime.errors import NotFound, TransientError

TIMEOUT_S = 5.0


async def fetch_trace(query_url: str, trace_id: str) -> Mapping[str, Any]:
    """The trace as the query API returns it (Jaeger's JSON: spans, processes)."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            response = await client.get(f"{query_url}/api/traces/{trace_id}")
    except httpx.HTTPError as error:
        raise TransientError(f"the trace backend at {query_url} does not answer") from error
    if response.status_code == 404:
        raise NotFound(f"the trace backend has no trace {trace_id} (yet, or any longer)")
    if response.status_code != 200:
        raise TransientError(f"the trace backend answered {response.status_code}")
    data = response.json().get("data") or []
    if not data:
        raise NotFound(f"the trace backend has no trace {trace_id} (yet, or any longer)")
    trace: Mapping[str, Any] = data[0]
    return trace


def span_tree(trace: Mapping[str, Any]) -> dict[str, Any]:
    """The spans in tree order (each after its parent, siblings by start) with their depth,
    offset from the trace's start and duration in milliseconds, and the links they carry."""
    services = {key: process.get("serviceName", "") for key, process in trace["processes"].items()}
    spans: Sequence[Mapping[str, Any]] = trace["spans"]
    ids = {span["spanID"] for span in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for span in spans:
        parent = _parent(span)
        children.setdefault(parent if parent in ids else None, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: int(s["startTime"]))
    start = min((int(s["startTime"]) for s in spans), default=0)
    end = max((int(s["startTime"]) + int(s["duration"]) for s in spans), default=0)
    ordered: list[dict[str, Any]] = []

    def visit(span: Mapping[str, Any], depth: int) -> None:
        tags = {tag["key"]: tag["value"] for tag in span.get("tags") or []}
        ordered.append(
            {
                "span_id": span["spanID"],
                "parent_id": _parent(span),
                "depth": depth,
                "service": services.get(span["processID"], ""),
                "operation": span["operationName"],
                "kind": tags.get("span.kind", "internal"),
                "error": tags.get("otel.status_code") == "ERROR" or tags.get("error") is True,
                "offset_ms": (int(span["startTime"]) - start) / 1000,
                "duration_ms": int(span["duration"]) / 1000,
                "links": [
                    {"trace_id": ref["traceID"], "span_id": ref["spanID"]}
                    for ref in span.get("references") or []
                    if ref.get("refType") == "FOLLOWS_FROM"
                ],
            }
        )
        for child in children.get(span["spanID"], []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    return {
        "trace_id": trace["traceID"],
        "duration_ms": (end - start) / 1000,
        "services": sorted({s["service"] for s in ordered}),
        "spans": ordered,
    }


def _parent(span: Mapping[str, Any]) -> str | None:
    for reference in span.get("references") or []:
        if reference.get("refType") == "CHILD_OF":
            return str(reference["spanID"])
    return None
