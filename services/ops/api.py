"""The live ops page: ``GET /ops`` and the data it reads under ``/v1/ops/``.

The page itself (HTML, JS, CSS from ``page/``, no CDN, no build step) carries no data and
needs no token. Its data does: the figures need an ops token; the search by appeal id reads the
audit log through audit's API with the searcher's own token, so audit decides (ops or auditor
with ``audit:read``) and logs the read like every other read of the log. The
page keeps its token in ``sessionStorage`` and sends it only as an ``Authorization`` header, so
the live stream is read with ``fetch`` (``EventSource`` cannot send headers) in the
Server-Sent-Events format.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, MutableMapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import StreamingResponse
from fastapi.telemetry import TelemetryConfig

from appeals import vocabulary
from appeals_runtime.auth import PermissionDenied, Principal, Role, TokenVerifier, with_article
from appeals_runtime.http import (
    TELEMETRY,
    authenticated,
    health_router,
    install_problem_handlers,
    page_router,
)
from services.ops import traces
from services.ops.audit_log import AuditTrails
from services.ops.scraper import OpsBoard

STREAM_PATH = "/v1/ops/stream"
# A stream ends after this long and the page reconnects, so an expired token stops being served.
STREAM_LIFETIME_S = 300.0
KEEP_ALIVE_S = 15.0


AppealId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
TraceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


def appeal_status(event_types: list[str]) -> str | None:
    """The status the newest status-changing event of a trail implies."""
    for event_type in reversed(event_types):
        if event_type in vocabulary.STATUS_AFTER_EVENT:
            return vocabulary.STATUS_AFTER_EVENT[event_type]
    return None


def trace_url(board: OpsBoard, trace_id: str | None) -> str | None:
    return None if not trace_id else f"{board.trace_ui_url}/trace/{trace_id}"


def appeal_view(trail: Mapping[str, Any], board: OpsBoard) -> dict[str, Any]:
    """An appeal as the ops page shows it (status, summary, trail, trace links), from its trail
    as audit's ``GET /v1/appeals/{id}/trail`` answers it."""
    summary = trail.get("summary") or {}
    entries = trail["entries"]
    types = [str(entry["type"]) for entry in entries]
    trace_ids = [entry["trace_id"] for entry in entries if entry.get("trace_id")]
    return {
        "appeal_id": trail["appeal_id"],
        "status": appeal_status(types),
        "last_event": types[-1] if types else None,
        "platform": summary.get("platform"),
        "queues": list(summary.get("queues") or []),
        "outcome": summary.get("outcome"),
        "submitted_at": summary.get("submitted_at"),
        "decided_at": summary.get("decided_at"),
        # The trace the appeal entered in; later steps (a reviewer's decision) may start others.
        "trace_id": trace_ids[0] if trace_ids else None,
        "trace_url": trace_url(board, trace_ids[0] if trace_ids else None),
        "tree_size": trail["tree_size"],
        "entries": [
            {
                "index": entry["index"],
                "type": entry["type"],
                "occurred_at": entry["occurred_at"],
                "producer": entry["producer"],
                "leaf_hash": entry["leaf_hash"],
                "proved": entry.get("audit_path") is not None,
                "trace_id": entry.get("trace_id"),
                "trace_url": trace_url(board, entry.get("trace_id")),
            }
            for entry in entries
        ],
    }


def overview(board: OpsBoard) -> dict[str, Any]:
    return {
        "settings": board.settings(),
        "snapshot": board.latest,
        "history": board.history.points(),
    }


def _event(name: str, data: Mapping[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _stream(request: Request, board: OpsBoard) -> AsyncIterator[str]:
    with board.watching():  # the scraper runs while a stream is open
        await board.fresh()
        yield _event("overview", overview(board))
        seen = board.version
        ends = time.monotonic() + STREAM_LIFETIME_S
        while not board.closed and time.monotonic() < ends:
            current = await board.next_sample(seen, min(KEEP_ALIVE_S, ends - time.monotonic()))
            if board.closed or await request.is_disconnected():
                return
            if current == seen:
                yield ": keep-alive\n\n"
                continue
            seen = current
            yield _event("sample", {"snapshot": board.latest, "point": board.latest_point})
        yield _event("reconnect", {})


async def _ops_viewer(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """The verified ops caller, whatever its scopes: the figures are aggregate metrics."""
    if principal.role != Role.OPS:
        raise PermissionDenied(
            f"the ops page needs an ops token, not {with_article(principal.role)} token"
        )
    return principal


async def _log_reader(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """An ops or auditor caller (audit checks the scope again, and logs the read)."""
    if principal.role not in (Role.OPS, Role.AUDITOR):
        raise PermissionDenied(
            "the audit log is read with an ops or auditor token, "
            f"not {with_article(principal.role)} token"
        )
    return principal


OpsViewer = Annotated[Principal, Depends(_ops_viewer)]
LogReader = Annotated[Principal, Depends(_log_reader)]


def ops_router(board: OpsBoard, trails: AuditTrails) -> APIRouter:
    router = APIRouter(tags=["ops page"])
    router.include_router(page_router("/ops", "services.ops", "page", "the ops page"))

    @router.get("/v1/ops/overview")
    async def ops_overview(_: OpsViewer) -> dict[str, Any]:
        """The latest figures, their recent history, and the page's settings."""
        board.asked()  # keeps the scraper going for a while, for whoever polls this
        await board.fresh()
        return overview(board)

    @router.get(STREAM_PATH)
    async def ops_stream(request: Request, _: OpsViewer) -> StreamingResponse:
        """Server-Sent Events: ``overview`` once, then ``sample`` after every scrape round."""
        return StreamingResponse(
            _stream(request, board),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.get("/v1/ops/traces/{trace_id}")
    async def ops_trace(trace_id: TraceId, _: OpsViewer) -> dict[str, Any]:
        """A trace's spans as a tree, read from the trace backend's query API."""
        return traces.span_tree(await traces.fetch_trace(board.trace_ui_url, trace_id))

    @router.get("/v1/ops/appeals/{appeal_id}")
    async def ops_appeal(appeal_id: AppealId, request: Request, _: LogReader) -> dict[str, Any]:
        """An appeal's status, trail and trace links, read from the audit log with the caller's
        own token (audit logs the read under the caller's name)."""
        trail = await trails.trail(appeal_id, request.headers["authorization"])
        return appeal_view(trail, board)

    return router


def _telemetry() -> TelemetryConfig:
    """The services' HTTP telemetry without the live stream: it stays open for minutes, and a
    span and a duration of that length would only skew the request figures."""
    shared = TELEMETRY["exclude"]

    def exclude(scope: MutableMapping[str, Any]) -> bool:
        return scope.get("path") == STREAM_PATH or bool(shared and shared(scope))

    return {**TELEMETRY, "exclude": exclude}


def create_app(board: OpsBoard, trails: AuditTrails, tokens: TokenVerifier) -> FastAPI:
    app = FastAPI(title="appeals ops page", telemetry=_telemetry())
    install_problem_handlers(app)
    app.include_router(health_router({}))
    app.state.verifier = tokens
    app.include_router(ops_router(board, trails))
    return app
