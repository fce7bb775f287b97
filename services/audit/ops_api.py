"""The live ops page: ``GET /ops`` and the data it reads under ``/v1/ops/``.

The page itself (HTML, JS, CSS from ``ops_page/``, no CDN, no build step) carries no data and
needs no token. Its data does: the figures need an ops token, the search by appeal id reads the
audit log and needs ``audit:read`` as well, and is logged like every other read of the log. The
page keeps its token in ``sessionStorage`` and sends it only as an ``Authorization`` header, so
the live stream is read with ``fetch`` (``EventSource`` cannot send headers) in the
Server-Sent-Events format.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse

from appeals_runtime import vocabulary
from appeals_runtime.errors import NotFound
from services.audit import ops_traces
from services.audit.callers import Caller, OpsViewer
from services.audit.entries import rfc3339
from services.audit.ops_scraper import OpsBoard
from services.audit.service import AuditService, Trail

STREAM_PATH = "/v1/ops/stream"
# A stream ends after this long and the page reconnects, so an expired token stops being served.
STREAM_LIFETIME_S = 300.0
KEEP_ALIVE_S = 15.0

_ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "ops.js": ("ops.js", "text/javascript; charset=utf-8"),
    "ops.css": ("ops.css", "text/css; charset=utf-8"),
}
# The page talks only to its own origin; trace links are plain links to another origin.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

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


def appeal_view(trail: Trail, board: OpsBoard) -> dict[str, Any]:
    """An appeal as the ops page shows it: status, summary, trail, trace links."""
    summary = trail.summary
    types = [str(entry.document["type"]) for entry in trail.entries]
    traces = [entry.trace_id for entry in trail.entries if entry.trace_id]
    size = trail.checkpoint.size if trail.checkpoint else 0

    def moment(name: str) -> str | None:
        value = summary.get(name)
        return None if value is None else rfc3339(value)

    return {
        "appeal_id": trail.appeal_id,
        "status": appeal_status(types),
        "last_event": types[-1] if types else None,
        "platform": summary.get("platform"),
        "queues": list(summary.get("queues") or []),
        "outcome": summary.get("outcome"),
        "submitted_at": moment("submitted_at"),
        "decided_at": moment("decided_at"),
        # The trace the appeal entered in; later steps (a reviewer's decision) may start others.
        "trace_id": traces[0] if traces else None,
        "trace_url": trace_url(board, traces[0] if traces else None),
        "tree_size": size,
        "entries": [
            {
                "index": entry.document["index"],
                "type": entry.document["type"],
                "occurred_at": rfc3339(entry.document["occurred_at"]),
                "producer": entry.document["producer"],
                "leaf_hash": entry.document["leaf_hash"],
                "proved": entry.audit_path is not None,
                "trace_id": entry.trace_id,
                "trace_url": trace_url(board, entry.trace_id),
            }
            for entry in trail.entries
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


def _asset(name: str) -> tuple[bytes, str]:
    filename, media_type = _ASSETS[name]
    return resources.files("services.audit").joinpath("ops_page", filename).read_bytes(), media_type


def ops_router(service: AuditService, board: OpsBoard) -> APIRouter:
    router = APIRouter(tags=["ops page"])
    assets = {name: _asset(name) for name in _ASSETS}

    def page(name: str) -> Response:
        body, media_type = assets[name]
        return Response(body, media_type=media_type, headers=_PAGE_HEADERS)

    @router.get("/ops", include_in_schema=False)
    async def ops_page() -> Response:
        return page("")

    @router.get("/ops/{asset}", include_in_schema=False)
    async def ops_asset(asset: str) -> Response:
        if asset not in assets or not asset:
            raise NotFound(f"the ops page has no {asset!r}")
        return page(asset)

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
        return ops_traces.span_tree(await ops_traces.fetch_trace(board.trace_ui_url, trace_id))

    @router.get("/v1/ops/appeals/{appeal_id}")
    async def ops_appeal(appeal_id: AppealId, caller: Caller) -> dict[str, Any]:
        """An appeal's status, trail and trace links; logged like every read of the log."""
        await service.log_access(caller, "ops search", appeal_id)
        return appeal_view(await service.trail(appeal_id), board)

    return router
