"""Both running gRPC servers speak the conventions generic tools rely on (issue 14 item 2).

Nothing here imports our generated stubs or messages: like grpcurl, the client asks the server's
reflection service which services it has, fetches their descriptors, builds request messages from
them at run time and calls a method by name; health is asked with the standard
``grpc.health.v1`` client, as a Kubernetes ``grpc`` probe does.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.e2e.conftest import Pipeline
from tests.support.bodies import appeal_body
from tests.support.pipeline import submit_rest

pytestmark = pytest.mark.e2e

STANDARD = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


def reflected_call(target: str, method: str, request: dict[str, Any], token: str) -> Any:
    """Call ``package.Service/Method`` knowing nothing but its name, as grpcurl does: the
    request and response types come from the server's reflection service."""
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        service_name, method_name = method.split("/")
        descriptor = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_type = message_factory.GetMessageClass(descriptor.input_type)
        response_type = message_factory.GetMessageClass(descriptor.output_type)
        call = channel.unary_unary(
            f"/{method}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        return call(
            json_format.ParseDict(request, request_type()),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )


def listed_services(target: str) -> set[str]:
    with grpc.insecure_channel(target) as channel:
        return set(ProtoReflectionDescriptorDatabase(channel).get_services())


async def test_reflection_lists_each_servers_services_and_a_call_needs_nothing_else(
    pipeline: Pipeline,
) -> None:
    intake = await asyncio.to_thread(listed_services, pipeline.intake_grpc)
    routing = await asyncio.to_thread(listed_services, pipeline.desk_grpc)
    assert intake >= {"appeals.v1.Intake"} | STANDARD, intake
    assert routing >= {"appeals.v1.AgentDesk", "appeals.v1.Referrals"} | STANDARD, routing

    async with httpx.AsyncClient(timeout=20) as client:
        submitted = await submit_rest(client, pipeline, appeal_body("whatsapp"), uuid.uuid4().hex)
    appeal_id = submitted.json()["appeal_id"]
    answer = await asyncio.to_thread(
        reflected_call, pipeline.intake_grpc, "appeals.v1.Intake/GetAppeal",
        {"appealId": appeal_id}, pipeline.ops_token(),
    )  # fmt: skip
    shown = json_format.MessageToDict(answer)
    assert shown["appeal"]["appealId"] == appeal_id
    assert shown["appeal"]["submission"]["platform"] == "PLATFORM_WHATSAPP"

    with pytest.raises(grpc.RpcError) as refused:
        await asyncio.to_thread(
            reflected_call, pipeline.desk_grpc, "appeals.v1.Referrals/ListReferrals", {},
            pipeline.agent_token("reflecting-agent"),
        )  # fmt: skip
    # Reflection serves the contract, not access: the call is still authorised as any other.
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_health_reports_each_server_and_service_serving(pipeline: Pipeline) -> None:
    servers = {
        pipeline.intake_grpc: ["", "appeals.v1.Intake"],
        pipeline.desk_grpc: ["", "appeals.v1.AgentDesk", "appeals.v1.Referrals"],
    }
    for target, services in servers.items():
        async with grpc.aio.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in services:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING, (target, service)
