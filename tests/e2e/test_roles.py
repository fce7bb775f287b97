"""Every REST operation and every gRPC method of the running services, by every role (issue 14
item 5): who gets through, who is refused, and that nothing leaks across platforms.

The operations come from each service's own served OpenAPI document and the methods from the
gRPC descriptors, so an endpoint added later without a line in ``ALLOWED`` fails the test.
A call "gets through" when it is answered with anything but 401 or 403 (UNAUTHENTICATED or
PERMISSION_DENIED): a 404 for an unknown appeal or a 400 for an empty request are the service's
answers to an allowed caller. A refused role gets exactly 403 / PERMISSION_DENIED; no token at all
gets 401 / UNAUTHENTICATED.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.descriptor import MethodDescriptor

from appeals.v1 import agent_desk_pb2, intake_pb2, referrals_pb2
from appeals_devstack import devkeys
from tests.e2e.conftest import Pipeline
from tests.support.bodies import appeal_body
from tests.support.pipeline import submit_rest

pytestmark = pytest.mark.e2e

ROLES = ("surface", "agent", "ops", "service", "referral_body", "auditor")
READERS = {"ops", "auditor"}

# (service, method, path) -> the roles that get through. Every operation served is listed.
ALLOWED: dict[tuple[str, str, str], set[str]] = {
    ("intake", "POST", "/v1/appeals"): {"surface"},
    ("intake", "GET", "/v1/appeals"): {"ops"},
    ("intake", "GET", "/v1/appeals/{appeal_id}"): {"surface", "ops"},
    ("intake", "POST", "/v1/appeals/{appeal_id}/information"): {"surface"},
    ("intake", "POST", "/v1/erasures"): {"surface", "ops"},
    ("intake", "POST", "/v1/ban-evasion/identifiers"): {"ops"},
    ("routing", "GET", "/v1/referrals"): {"referral_body", "ops"},
    ("routing", "POST", "/v1/routing/explanations"): {"ops"},
    ("routing", "POST", "/v1/referrals/{appeal_id}/decision"): {"referral_body"},
    ("notifications", "GET", "/v1/appeals/{appeal_id}/notifications"): {"ops"},
    ("notifications", "POST", "/v1/verification-codes"): {"service"},
    ("audit", "GET", "/v1/appeals/{appeal_id}/trail"): READERS,
    ("audit", "GET", "/v1/audit/verify"): READERS,
    ("audit", "GET", "/v1/audit/key"): READERS,
    ("audit", "GET", "/v1/audit/checkpoints/latest"): READERS,
    ("audit", "POST", "/v1/audit/checkpoints"): {"ops"},
    ("audit", "GET", "/v1/audit/proofs/inclusion"): READERS,
    ("audit", "GET", "/v1/audit/proofs/consistency"): READERS,
    ("audit", "GET", "/v1/audit/appeals"): READERS,
    ("audit", "GET", "/v1/audit/exports/statements-of-reasons"): READERS,
    ("audit", "GET", "/v1/audit/reports/complaint-handling"): READERS,
    ("audit", "GET", "/v1/audit/reconciliation"): {"ops"},
    ("audit", "POST", "/v1/audit/erasures"): {"ops"},
    ("ops", "GET", "/v1/ops/overview"): {"ops"},
    ("ops", "GET", "/v1/ops/stream"): {"ops"},
    ("ops", "GET", "/v1/ops/traces/{trace_id}"): {"ops"},
    ("ops", "GET", "/v1/ops/appeals/{appeal_id}"): READERS,
    # Live help's internal chat API: routing's desk relaying an agent's side of a chat.
    ("help", "GET", "/internal/v1/chats/{chat_id}"): {"service"},
    ("help", "POST", "/internal/v1/chats/{chat_id}/assignment"): {"service"},
    ("help", "POST", "/internal/v1/chats/{chat_id}/handover"): {"service"},
    ("help", "POST", "/internal/v1/chats/{chat_id}/close"): {"service"},
    ("help", "GET", "/internal/v1/chats/{chat_id}/updates"): {"service"},
    ("help", "POST", "/internal/v1/chats/{chat_id}/messages"): {"service"},
    ("help", "POST", "/internal/v1/chats/{chat_id}/receipts"): {"service"},
    ("help", "POST", "/v1/help/erasures"): {"surface", "ops"},
}
# Served but open to anyone on purpose: probes, metrics, the documents describing the API; and
# live help, whose callers have no account to log in with (it is guarded by codes sent to the
# contact on file, limits and its own short sessions: tests/integration/test_help_verification.py).
OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
        "/redoc", "/ops", "/ops/{asset}", "/help", "/help/{asset}", "/v1/help/platforms",
        "/v1/help/verifications", "/v1/help/verifications/{verification_id}/check",
        "/v1/help/session",
        # The person's chat: help session tokens only, which no pipeline role holds (401 for
        # every token here; tests/integration/test_help_chats.py covers who reaches which chat).
        "/v1/help/chats", "/v1/help/chats/{chat_id}", "/v1/help/chats/{chat_id}/updates",
        "/v1/help/chats/{chat_id}/messages", "/v1/help/chats/{chat_id}/receipts",
        "/v1/help/chats/{chat_id}/close"}  # fmt: skip

GRPC_ALLOWED: dict[str, set[str]] = {
    "/appeals.v1.Intake/SubmitAppeal": {"surface"},
    "/appeals.v1.Intake/GetAppeal": {"surface", "ops"},
    "/appeals.v1.Intake/RecordEvasionIdentifiers": {"ops"},
    "/appeals.v1.Intake/GetAppealParticulars": {"service"},
    "/appeals.v1.Intake/EraseAppellant": {"surface", "ops"},
    "/appeals.v1.Referrals/ListReferrals": {"referral_body", "ops"},
    "/appeals.v1.Referrals/DecideReferral": {"referral_body"},
    # Every method of the agent desk: agents only.
    **{
        f"/appeals.v1.AgentDesk/{method.name}": {"agent"}
        for method in agent_desk_pb2.DESCRIPTOR.services_by_name["AgentDesk"].methods
    },
}

BODIES: dict[str, Any] = {
    "/v1/audit/erasures": {"pseudonym": "ps_" + "0" * 32},
    "/v1/help/erasures": {"platform": "instagram", "user_id": "nobody-known-0001"},
    "/v1/routing/explanations": {"submission": {"platform": 2, "locale": "en"}},
    "/v1/verification-codes": {
        "request_id": "roles-code-0001",
        "platform": "instagram",
        "to": {"kind": "user_id", "address": "ig-roles-user"},
        "code": "123456",
        "expires_at": "2099-01-01T00:00:00Z",
    },
    "/v1/appeals/{appeal_id}/information": {"answer": "Here it is."},
    "/v1/erasures": {"platform": "instagram", "user_id": "nobody-known-0001"},
    "/v1/ban-evasion/identifiers": {"hashes": ["h-roles-0001"]},
    "/v1/referrals/{appeal_id}/decision": {
        "outcome": "upheld",
        "rationale": "As decided.",
        "policy_cited": "spam",
        "facts": "A post advertising the same link forty times.",
    },
}


def token(pipeline: Pipeline, role: str) -> str:
    subjects = {"referral_body": "oversight_board", "surface": "instagram-app"}
    # The pipeline's services, each scope any of them holds (live help's codes:send included).
    scopes = ["particulars:read", "codes:send", "chats:relay"] if role == "service" else None
    return devkeys.mint_token(
        pipeline.signing_key, role=role, subject=subjects.get(role, f"{role}-roles"),
        platforms=["instagram"] if role == "surface" else None, queues=["*"], scopes=scopes,
    )  # fmt: skip


async def rest_call(
    client: httpx.AsyncClient, pipeline: Pipeline, key: tuple[str, str, str], appeal_id: str,
    headers: dict[str, str],
) -> int:  # fmt: skip
    service, method, path = key
    url = pipeline.url(service) + path.format(
        appeal_id=appeal_id, trace_id="0" * 32, chat_id="ch_" + "c" * 22
    )
    if path == "/v1/appeals" and method == "POST":
        body: Any = appeal_body("instagram")
        headers = headers | {"Idempotency-Key": uuid.uuid4().hex}
    else:
        body = BODIES.get(path)
    if path == "/v1/appeals" and method == "GET":
        url += "?received_after=2026-01-01T00:00:00Z&received_before=2026-01-02T00:00:00Z"
    if path == "/v1/audit/reconciliation":
        url += "?since=2026-01-01T00:00:00Z&until=2026-01-01T00:01:00Z"
    if path == "/v1/ops/stream":
        async with client.stream(method, url, headers=headers) as response:
            return response.status_code
    return (await client.request(method, url, json=body, headers=headers)).status_code


async def test_every_rest_operation_lets_in_exactly_its_roles(pipeline: Pipeline) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        served = set()
        for service in ("intake", "routing", "notifications", "audit", "ops", "help"):
            document = (await client.get(f"{pipeline.url(service)}/openapi.json")).json()
            served |= {
                (service, method.upper(), path)
                for path, operations in document["paths"].items()
                if path not in OPEN
                for method in operations
            }
        assert served - set(ALLOWED) == set(), "operations without a line in ALLOWED"
        submitted = await submit_rest(client, pipeline, appeal_body("instagram"), uuid.uuid4().hex)
        appeal_id = submitted.json()["appeal_id"]
        wrong: list[str] = []
        for key, allowed in ALLOWED.items():
            anonymous = await rest_call(client, pipeline, key, appeal_id, {})
            if anonymous != 401:
                wrong.append(f"{key} without a token: {anonymous}")
            for role in ROLES:
                auth = {"Authorization": f"Bearer {token(pipeline, role)}"}
                status = await rest_call(client, pipeline, key, appeal_id, auth)
                through = status not in (401, 403)
                if through != (role in allowed) or (not through and status != 403):
                    wrong.append(f"{key} as {role}: {status}")
        assert not wrong, "\n".join(wrong)


async def test_every_grpc_method_lets_in_exactly_its_roles(pipeline: Pipeline) -> None:
    services = {
        pipeline.intake_grpc: intake_pb2.DESCRIPTOR.services_by_name["Intake"],
        pipeline.desk_grpc: referrals_pb2.DESCRIPTOR.services_by_name["Referrals"],
    }
    desk = agent_desk_pb2.DESCRIPTOR.services_by_name["AgentDesk"]
    wrong: list[str] = []
    servers = (
        (pipeline.intake_grpc, [services[pipeline.intake_grpc]]),
        (pipeline.desk_grpc, [services[pipeline.desk_grpc], desk]),
    )
    for target, descriptors in servers:
        async with grpc.aio.insecure_channel(target) as channel:
            for descriptor in descriptors:
                for method in descriptor.methods:
                    name = f"/{descriptor.full_name}/{method.name}"
                    assert name in GRPC_ALLOWED, f"{name} has no line in GRPC_ALLOWED"
                    for role in (None, *ROLES):
                        code = await grpc_call(channel, name, method, role, pipeline)
                        if role is None:
                            if code != grpc.StatusCode.UNAUTHENTICATED:
                                wrong.append(f"{name} without a token: {code}")
                            continue
                        through = code not in (
                            grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                        )  # fmt: skip
                        if through != (role in GRPC_ALLOWED[name]) or (
                            not through and code != grpc.StatusCode.PERMISSION_DENIED
                        ):
                            wrong.append(f"{name} as {role}: {code}")
    assert not wrong, "\n".join(wrong)


async def grpc_call(
    channel: grpc.aio.Channel,
    name: str,
    method: MethodDescriptor,
    role: str | None,
    pipeline: Pipeline,
) -> grpc.StatusCode:
    """An empty request (or one empty frame), as raw bytes; the status it is answered with
    (OK included)."""
    metadata = () if role is None else (("authorization", f"Bearer {token(pipeline, role)}"),)
    try:
        if method.client_streaming:
            both = channel.stream_stream(
                name, request_serializer=bytes, response_deserializer=bytes
            )
            session = both(iter([b""]), metadata=metadata, timeout=5)
            async for _ in session:
                break
            session.cancel()
            return grpc.StatusCode.OK
        if method.server_streaming:
            call = channel.unary_stream(name, request_serializer=bytes, response_deserializer=bytes)
            stream = call(b"", metadata=metadata, timeout=2)
            async for _ in stream:
                break  # one answer means it got through
            stream.cancel()
            return grpc.StatusCode.OK
        unary = channel.unary_unary(name, request_serializer=bytes, response_deserializer=bytes)
        await unary(b"", metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


async def test_another_platforms_appeal_is_not_found_and_ops_see_no_particulars(
    pipeline: Pipeline,
) -> None:
    body = appeal_body("instagram")
    body["statement"] = "My own words, for my platform and the pipeline's services only."
    async with httpx.AsyncClient(timeout=20) as client:
        submitted = await submit_rest(client, pipeline, body, uuid.uuid4().hex)
        appeal_id = submitted.json()["appeal_id"]
        url = f"{pipeline.url('intake')}/v1/appeals"
        facebook = {"Authorization": f"Bearer {pipeline.surface_token('facebook')}"}
        theirs = await client.get(f"{url}/{appeal_id}", headers=facebook)
        unknown = await client.get(f"{url}/ap_{uuid.uuid4().hex[:26]}", headers=facebook)
        assert theirs.status_code == unknown.status_code == 404
        # The same answer as for an appeal that does not exist: nothing confirms it does.
        assert theirs.json()["detail"] == f"no appeal {appeal_id}"
        assert unknown.json()["detail"].startswith("no appeal ap_")
        answered = await client.post(
            f"{url}/{appeal_id}/information", json={"answer": "Here."}, headers=facebook
        )
        assert answered.status_code == 404
        own = await client.get(
            f"{url}/{appeal_id}",
            headers={"Authorization": f"Bearer {pipeline.surface_token('instagram')}"},
        )
        assert own.json()["statement"] == body["statement"]
        assert own.json()["appellant"]["user_id"] == body["appellant"]["user_id"]
        ops = await client.get(
            f"{url}/{appeal_id}", headers={"Authorization": f"Bearer {pipeline.ops_token()}"}
        )
        assert ops.status_code == 200
        seen = ops.json()
        assert seen["statement"] == "" and seen["appellant"]["user_id"] == ""
        assert seen["subject"]["id"] == body["subject"]["id"] and seen["status"]
    async with grpc.aio.insecure_channel(pipeline.intake_grpc) as channel:
        get = channel.unary_unary(
            "/appeals.v1.Intake/GetAppeal",
            request_serializer=intake_pb2.GetAppealRequest.SerializeToString,
            response_deserializer=intake_pb2.GetAppealResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await get(
                intake_pb2.GetAppealRequest(appeal_id=appeal_id),
                metadata=(("authorization", f"Bearer {pipeline.surface_token('facebook')}"),),
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        shown = await get(
            intake_pb2.GetAppealRequest(appeal_id=appeal_id),
            metadata=(("authorization", f"Bearer {pipeline.ops_token()}"),),
        )
        assert not shown.appeal.submission.statement
        assert not shown.appeal.submission.appellant.user_id
