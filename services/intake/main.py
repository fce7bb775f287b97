"""Wires the intake service together and runs it: nothing else lives here."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from appeals_runtime.http import HttpServer, health_router
from appeals_runtime.service import run_components, service_context
from appeals_runtime.settings import load_settings
from services.intake.config import IntakeSettings

SERVICE_NAME = "intake"


async def serve(settings: IntakeSettings) -> None:
    async with service_context(SERVICE_NAME, settings) as ctx:
        app = FastAPI(title="appeals intake")
        app.include_router(health_router(ctx.readiness_checks))
        await run_components([HttpServer(app, host=settings.bind_host, port=settings.http_port)])


def main() -> None:
    asyncio.run(serve(load_settings(IntakeSettings)))


if __name__ == "__main__":
    main()
