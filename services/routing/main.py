"""Wires the routing service together and runs it: nothing else lives here."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI

from appeals_runtime import topics
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.grpc_server import GrpcServer
from appeals_runtime.http import HttpServer, health_router
from appeals_runtime.kafka.consumer import ConsumerRunner
from appeals_runtime.service import run_components, service_context
from appeals_runtime.settings import load_settings
from services.routing import grpc_api, repository
from services.routing.config import CONSUMER_GROUP, RoutingSettings
from services.routing.consumer import SubmittedAppeals
from services.routing.desk import AgentDesk

SERVICE_NAME = "routing"


async def serve(settings: RoutingSettings) -> None:
    verifier = TokenVerifier.from_settings(settings)
    async with service_context(SERVICE_NAME, settings, repository.INDEXES) as ctx:
        repo = repository.RoutingRepository(ctx.db)
        desk = AgentDesk(
            repo,
            ctx.producer,
            lease=timedelta(seconds=settings.claim_lease_s),
            service_name=SERVICE_NAME,
        )
        app = FastAPI(title="Appeals routing")
        app.include_router(health_router(ctx.readiness_checks))
        await run_components(
            [
                HttpServer(app, host=settings.bind_host, port=settings.http_port),
                GrpcServer(
                    grpc_api.register(
                        grpc_api.AgentDeskServicer(desk, verifier, poll_s=settings.offer_poll_s)
                    ),
                    host=settings.bind_host,
                    port=settings.grpc_port,
                ),
                ConsumerRunner(
                    name="routing",
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    group_id=CONSUMER_GROUP,
                    topics=[topics.APPEAL_LIFECYCLE],
                    handler=SubmittedAppeals(repo, ctx.producer, service_name=SERVICE_NAME).handle,
                    producer=ctx.producer,
                ),
            ]
        )


def main() -> None:
    asyncio.run(serve(load_settings(RoutingSettings)))


if __name__ == "__main__":
    main()
