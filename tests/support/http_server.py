"""A service's FastAPI app on a real HTTP server (the service's own HttpServer, a free port), for
tests that drive it from another process, such as the `appeals` command."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from appeals_devstack.processes import free_port
from appeals_runtime.http import HttpServer
from tests.support.waiting import eventually


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` served on 127.0.0.1 at a free port until the block ends; yields its base URL."""
    port = free_port()
    server = HttpServer(app, host="127.0.0.1", port=port)
    running = asyncio.create_task(server.run())
    base = f"http://127.0.0.1:{port}"

    async def answering() -> bool:
        if running.done():
            running.result()  # the server failed to start: say why
        try:
            async with httpx.AsyncClient() as client:
                await client.get(f"{base}/healthz")
        except httpx.TransportError:
            return False
        return True

    try:
        await eventually(answering, f"the HTTP server on :{port}", 10)
        yield base
    finally:
        await server.stop()
        await running


async def run_command(*args: str, timeout_s: float = 120) -> tuple[int, str, str]:
    """Run a command (e.g. ``python -m appeals_cli.main ...``) without blocking the event loop
    that serves the app it talks to; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    return process.returncode or 0, out.decode(), err.decode()
