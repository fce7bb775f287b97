"""HTTP pieces every service shares: health and readiness probes, metrics, the uvicorn component."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse

from appeals_runtime.telemetry import prometheus_exposition

ReadinessCheck = Callable[[], Awaitable[None]]


def health_router(readiness_checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    """``/healthz`` (the process is alive), ``/readyz`` (its dependencies answer), ``/metrics``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in readiness_checks.items():
            try:
                await asyncio.wait_for(check(), timeout=4)
                results[name] = "ok"
            except Exception as error:
                results[name] = f"unavailable: {type(error).__name__}"
        ready = all(result == "ok" for result in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics")
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


class HttpServer:
    """Runs a FastAPI app as a component of the service runtime."""

    def __init__(self, app: FastAPI, *, host: str, port: int, name: str = "http") -> None:
        self.name = name
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
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


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
