"""HTTP pieces every service shares: health and readiness probes, metrics, the uvicorn component."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Generator, Mapping
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appeals_runtime.auth import PermissionDenied, Principal, TokenVerifier, Unauthenticated
from appeals_runtime.errors import (
    Conflict,
    NotFound,
    TooManyRequests,
    TransientError,
    Unprocessable,
    ValidationFailed,
)
from appeals_runtime.readiness import ReadinessCheck, all_ready, check_readiness
from appeals_runtime.telemetry import prometheus_exposition

log = logging.getLogger(__name__)


# Probes are called every few seconds by orchestrators and Prometheus: neither traced nor timed.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

# FastAPI's built-in OpenTelemetry support, for every service's app (``FastAPI(telemetry=...)``):
# SERVER spans continuing the caller's ``traceparent`` and ``http.server.request.duration`` with
# the route template, never the raw path. Its log records are off: they would carry request
# bodies (personal data) into logs; our problem handlers log what matters.
TELEMETRY: TelemetryConfig = {
    "exclude": lambda scope: scope.get("path") in PROBE_PATHS,
    "logs": False,
    "operation_spans": False,
}


async def authenticated(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """FastAPI dependency: the verified caller. Apps set ``app.state.verifier``.

    A dependency runs before the body is validated, so an anonymous caller learns nothing about
    what a valid body looks like: 401 comes first. ``async`` although it never awaits: FastAPI
    runs a plain ``def`` dependency in a worker thread, a hand-off that costs more than the
    signature check itself (it ran on every request).
    """
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify_header(authorization)


# Annotate a route parameter with this to receive the authenticated caller.
Caller = Annotated[Principal, Depends(authenticated)]


# The probes' and the scrape's paths (never refused by admission control).
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def health_router(readiness_checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    """``/healthz`` (the process is alive), ``/readyz`` (its dependencies answer), ``/metrics``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        responses={503: {"description": "A dependency (broker or store) does not answer."}},
    )
    async def readyz() -> JSONResponse:
        results = await check_readiness(readiness_checks)
        ready = all_ready(results)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        body, content_type = prometheus_exposition()
        return Response(content=body, media_type=content_type)

    return router


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The service runtime owns SIGINT/SIGTERM so that consumers commit before the process
        # exits; uvicorn would otherwise re-raise the signal after serving.
        yield


KEEP_ALIVE_S = 75


class HttpServer:
    """Runs a FastAPI app as a component of the service runtime."""

    def __init__(self, app: FastAPI, *, host: str, port: int, name: str = "http") -> None:
        self.name = name
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            # Longer than clients' pool expiry (httpx: 5 s, the server's default too): a client
            # must never reuse a connection the server is closing at that moment, which it sees
            # as "disconnected without sending a response".
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        self._server = _Server(config)

    async def run(self) -> None:
        await self._server.serve()
        if not self._server.should_exit:
            raise RuntimeError(f"HTTP server {self.name} stopped unexpectedly")
        if not self._server.started:
            raise RuntimeError(f"HTTP server {self.name} could not start (is the port free?)")

    async def stop(self) -> None:
        self._server.should_exit = True


PROBLEM_JSON = "application/problem+json"
# Seconds a client should wait before retrying when the broker or store is unavailable.
RETRY_AFTER_UNAVAILABLE_S = 2


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An RFC 9457 problem details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def invalid_request_problem(error: RequestValidationError) -> JSONResponse:
    """400 naming each field the request's schema refused (RFC 9457 ``invalid_params``)."""
    params = [
        {"name": _location(tuple(item["loc"])), "reason": item["msg"]} for item in error.errors()
    ]
    return problem(400, "Invalid request", "The request has invalid fields.", invalid_params=params)


def _location(loc: tuple[int | str, ...]) -> str:
    """A field's name as the client wrote it: a body member's dotted path, or the name of a
    header, query or path parameter (``Idempotency-Key``, ``limit``)."""
    if loc and loc[0] in ("body", "header", "query", "path"):
        loc = loc[1:]
    name = ""
    for part in loc:
        # List items as the pipeline's own violations name them: attachments[0].uri
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or "body"


# A Retry-After beyond a day is no advice a client can act on (and infinity is no number).
MAX_RETRY_AFTER_S = 86_400


def retry_after_seconds(wait_s: float) -> int:
    """A Retry-After value in whole seconds: at least 1, at most a day, even for inf or NaN."""
    if not math.isfinite(wait_s):
        return MAX_RETRY_AFTER_S
    return min(MAX_RETRY_AFTER_S, max(1, math.ceil(wait_s)))


def _explained(
    status: int, title: str, error: Conflict | Unprocessable | TooManyRequests
) -> JSONResponse:
    headers = None
    if error.retry_after_s is not None:
        headers = {"Retry-After": str(retry_after_seconds(error.retry_after_s))}
    members = dict(error.extra)
    if error.code:
        members["code"] = error.code
    return problem(status, title, str(error), headers=headers, **members)


def _document_problems_not_fastapi_defaults(app: FastAPI) -> None:
    """FastAPI documents a 422 "HTTPValidationError" on every route with parameters; our
    validation errors are 400 problem+json (declared per route), so that default is removed
    from the schema rather than promised to clients."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                default = operation.get("responses", {}).get("422", {})
                content = default.get("content", {}).get("application/json", {})
                if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    del operation["responses"]["422"]
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class _LastResort:
    """Answers an error nothing else handled with a 500 problem+json and logs it here.

    Without it, Starlette sends a plain-text 500 and re-raises the error to the server, which
    logs "Exception in ASGI application" and closes the connection: clients see an answer in
    another format, or none at all when the response had started. It sits inside Starlette's
    own error middleware, so the server never sees the error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, receive, tracking)
        except Exception:
            log.exception("request failed", extra={"path": scope.get("path")})
            if started:
                return  # the answer is under way: the connection ends short, nothing else to do
            response = problem(500, "Internal error", "The request failed; nothing was accepted.")
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    """Map the pipeline's typed errors to RFC 9457 problem+json responses; anything else is a
    500 problem+json (logged), never an error escaping to the server."""
    _document_problems_not_fastapi_defaults(app)
    app.add_middleware(_LastResort)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        # Framework-raised errors (unparsable body, unknown route, wrong method) speak
        # problem+json too, so clients handle one error format.
        title = HTTPStatus(error.status_code).phrase
        return problem(
            error.status_code, title, str(error.detail), headers=dict(error.headers or {})
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return invalid_request_problem(error)

    @app.exception_handler(ValidationFailed)
    async def validation_failed(_: Request, error: ValidationFailed) -> JSONResponse:
        params = [{"name": v.field, "reason": v.description} for v in error.violations]
        return problem(
            400, "Invalid request", "The request has invalid fields.", invalid_params=params
        )

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(_: Request, error: Unauthenticated) -> JSONResponse:
        return problem(401, "Unauthenticated", str(error), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(PermissionDenied)
    async def forbidden(_: Request, error: PermissionDenied) -> JSONResponse:
        return problem(403, "Forbidden", str(error))

    @app.exception_handler(NotFound)
    async def not_found(_: Request, error: NotFound) -> JSONResponse:
        return problem(404, "Not found", str(error))

    @app.exception_handler(Conflict)
    async def conflict(_: Request, error: Conflict) -> JSONResponse:
        return _explained(409, "Conflict", error)

    @app.exception_handler(Unprocessable)
    async def unprocessable(_: Request, error: Unprocessable) -> JSONResponse:
        return _explained(422, "Unprocessable request", error)

    @app.exception_handler(TooManyRequests)
    async def too_many(_: Request, error: TooManyRequests) -> JSONResponse:
        return _explained(429, "Too many requests", error)

    @app.exception_handler(TransientError)
    async def unavailable(_: Request, error: TransientError) -> JSONResponse:
        return problem(
            503,
            "Service unavailable",
            f"{error} Nothing was accepted; retry later.",
            headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
        )


def problem_body(response: httpx.Response) -> dict[str, Any]:
    """Another service's problem answer (RFC 9457) as a dict; empty when it is none."""
    if "json" not in response.headers.get("content-type", ""):
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def problem_detail(response: httpx.Response) -> str:
    """The ``detail`` of another service's problem answer; empty when it is none."""
    return str(problem_body(response).get("detail") or "")


# A page's own headers: it talks only to its own origin, runs no inline script and cannot be
# framed; links to other origins are plain links.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


def page_router(path: str, package: str, folder: str, what: str) -> APIRouter:
    """A static page (``index.html`` and its scripts and styles, read once from ``folder`` of
    ``package``) at ``path`` and ``path/<file>``, with :data:`PAGE_HEADERS`. It carries no data,
    so it needs no token; its data comes from the service's API."""
    files = resources.files(package).joinpath(folder)
    assets = {
        item.name: (item.read_bytes(), _MEDIA_TYPES[Path(item.name).suffix])
        for item in files.iterdir()
        if Path(item.name).suffix in _MEDIA_TYPES
    }
    router = APIRouter()

    def served(name: str) -> Response:
        if name not in assets:
            raise NotFound(f"{what} has no {name!r}")
        body, media_type = assets[name]
        return Response(body, media_type=media_type, headers=PAGE_HEADERS)

    @router.get(path, include_in_schema=False)
    async def page() -> Response:
        return served("index.html")

    @router.get(f"{path}/{{asset}}", include_in_schema=False)
    async def asset(asset: str) -> Response:
        return served(asset)

    return router
