"""Wires the notifications service together and runs it: nothing else lives here."""

from __future__ import annotations

import asyncio

from appeals_runtime.auth import TokenVerifier
from appeals_runtime.http import HttpServer
from appeals_runtime.service import run_components, service_context
from appeals_runtime.settings import load_settings
from services.notifications import repository
from services.notifications.api import create_app
from services.notifications.channels import ChannelDirectory
from services.notifications.config import NotificationsSettings
from services.notifications.consumer import lifecycle_consumer
from services.notifications.messages import MessageRenderer
from services.notifications.notifier import Notifier

SERVICE_NAME = "notifications"


async def serve(settings: NotificationsSettings) -> None:
    verifier = TokenVerifier.from_settings(settings)
    async with service_context(SERVICE_NAME, settings, indexes=repository.INDEXES) as ctx:
        notifications = repository.NotificationsRepository(ctx.db)
        notifier = Notifier(
            notifications, MessageRenderer(), ChannelDirectory(notifications), ctx.producer
        )
        app = create_app(notifications, verifier, readiness_checks=ctx.readiness_checks)
        await run_components(
            [
                HttpServer(app, host=settings.bind_host, port=settings.http_port),
                lifecycle_consumer(ctx, notifier),
            ]
        )


def main() -> None:
    asyncio.run(serve(load_settings(NotificationsSettings)))


if __name__ == "__main__":
    main()
