"""gRPC health (``grpc.health.v1``) follows readiness, on intake's real gRPC server: called with the
standard health client, as a Kubernetes ``grpc`` probe or a load balancer would (issue 14 item 2).
Reflection and a call built from it alone are in tests/e2e/test_grpc_conventions.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from appeals_devstack.processes import free_port
from appeals_runtime.grpc_server import GrpcServer
from services.intake import grpc_api
from tests.support.intake_app import IntakeUnderTest

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Switch:
    """A readiness check the test turns off and on (a store that went away and came back)."""

    def __init__(self) -> None:
        self.up = True

    async def check(self) -> None:
        if not self.up:
            raise ConnectionError("the store is unreachable")


async def statuses(stub: health_pb2_grpc.HealthStub, service: str) -> AsyncGenerator[int, None]:
    async for answer in stub.Watch(health_pb2.HealthCheckRequest(service=service)):
        yield answer.status


async def test_health_follows_readiness_for_the_server_and_each_service(
    intake: IntakeUnderTest,
) -> None:
    store = Switch()
    port = free_port()
    server = GrpcServer(
        grpc_api.register(grpc_api.IntakeServicer(intake.intake, intake.verifier)),
        host="127.0.0.1",
        port=port,
        readiness={"store": store.check},
        health_refresh_s=0.2,
    )
    running = asyncio.create_task(server.run())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", "appeals.v1.Intake"):
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service))
                assert answer.status == SERVING, service
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await stub.Check(health_pb2.HealthCheckRequest(service="appeals.v1.Nothing"))
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

            seen: list[int] = []
            watching = statuses(stub, "appeals.v1.Intake")
            async with asyncio.timeout(10):
                seen.append(await anext(watching))
                store.up = False
                seen.append(await anext(watching))
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=""))
                assert answer.status == NOT_SERVING
                store.up = True
                seen.append(await anext(watching))
            assert seen == [SERVING, NOT_SERVING, SERVING]
            await watching.aclose()
    finally:
        await server.stop()
        await running
