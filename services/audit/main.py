"""Wires the audit service together and runs it: nothing else lives here."""

from __future__ import annotations

import asyncio

from appeals_runtime.auth import TokenVerifier
from appeals_runtime.http import HttpServer
from appeals_runtime.service import run_components, service_context
from appeals_runtime.settings import load_settings
from services.audit import api, repository
from services.audit.config import CONSUMER_GROUP, AuditSettings
from services.audit.consumer import audit_consumer

SERVICE_NAME = "audit"


async def serve(settings: AuditSettings) -> None:
    tokens = TokenVerifier.from_settings(settings)
    async with service_context(SERVICE_NAME, settings, indexes=repository.INDEXES) as ctx:
        audit_log = repository.AuditRepository(ctx.db)
        consumer = audit_consumer(
            name=SERVICE_NAME,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=CONSUMER_GROUP,
            repository=audit_log,
            producer=ctx.producer,
        )
        app = api.create_app(audit_log, tokens, readiness_checks=ctx.readiness_checks)
        http = HttpServer(app, host=settings.bind_host, port=settings.http_port)
        await run_components([http, consumer])


def main() -> None:
    asyncio.run(serve(load_settings(AuditSettings)))


if __name__ == "__main__":
    main()
