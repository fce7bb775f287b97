"""Referral round trips on the real store and broker: a case referred to the Oversight Board or a
certified out-of-court body comes back with the body's binding decision through the Referrals
API (gRPC and REST, the body's own token), is applied (decided event, restore command, identical
content where the policy says so) and leaves the live referrals; overdue ones show to ops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI

from appeals import topics
from appeals.v1 import appeal_pb2, commands_pb2, referrals_pb2, referrals_pb2_grpc
from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_devstack.stack import Infrastructure
from appeals_runtime.grpc_server import GrpcServer
from appeals_runtime.http import install_problem_handlers
from appeals_runtime.telemetry import prometheus_exposition, setup_telemetry
from services.routing import main as routing_main
from services.routing import referrals_api
from services.routing.model import Status, Target
from tests.support.desk import Clock, EventTap, agent, of, route, submission

pytestmark = pytest.mark.integration

UPHELD, OVERTURNED = appeal_pb2.OUTCOME_UPHELD, appeal_pb2.OUTCOME_OVERTURNED
BOARD, USER_RIGHTS = "oversight_board", "ods:user_rights"
REVIEWER = agent("reviewer-1")


@dataclass
class Bodies:
    """The Referrals API served as in production: gRPC on a port, REST through the app."""

    stub: referrals_pb2_grpc.ReferralsStub
    http: httpx.AsyncClient
    signing_key: Path

    def token(self, role: str, subject: str) -> str:
        return devkeys.mint_token(self.signing_key, role=role, subject=subject)

    def grpc_as(self, role: str, subject: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.token(role, subject)}"),)

    def http_as(self, role: str, subject: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(role, subject)}"}


@contextlib.asynccontextmanager
async def serving(parts: routing_main.RoutingParts, key_dir: Path) -> AsyncIterator[Bodies]:
    signing_key, jwks = devkeys.ensure(key_dir)
    verifier = devkeys.dev_verifier(jwks)
    port = free_port()
    server = GrpcServer(
        referrals_api.register(referrals_api.ReferralsServicer(parts.referrals, verifier)),
        host="127.0.0.1",
        port=port,
    )
    app = FastAPI()
    app.state.verifier = verifier
    install_problem_handlers(app)
    app.include_router(referrals_api.rest_router(parts.referrals))
    task = asyncio.create_task(server.run())
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://routing"
            ) as http,
        ):
            yield Bodies(referrals_pb2_grpc.ReferralsStub(channel), http, signing_key)
    finally:
        await server.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def bodies(routing: routing_main.RoutingParts, tmp_path: Path) -> AsyncIterator[Bodies]:
    async with serving(routing, tmp_path) as served:
        yield served


async def refer(
    routing: routing_main.RoutingParts, appeal_id: str, target: Target, body: str = ""
) -> None:
    await routing.desk.claim(REVIEWER, appeal_id)
    after = await routing.desk.escalate(
        REVIEWER, appeal_id, target=target, reason="Needs an outside view.",
        question="Does quoting a slur to condemn it violate the policy?", body=body,
    )  # fmt: skip
    assert after.status == Status.REFERRED


def decision_request(appeal_id: str, outcome: int) -> referrals_pb2.DecideReferralRequest:
    return referrals_pb2.DecideReferralRequest(
        appeal_id=appeal_id, outcome=outcome,  # type: ignore[arg-type]
        rationale="Condemning a slur is not hate speech.", policy_cited="hate_speech",
        facts="The post quotes the slur to criticise it.",
    )  # fmt: skip


async def test_the_boards_overturn_comes_back_restores_the_content_and_its_copies(
    routing: routing_main.RoutingParts,
    bodies: Bodies,
    lifecycle: EventTap,
    infra: Infrastructure,
    clock: Clock,
) -> None:
    facebook = appeal_pb2.PLATFORM_FACEBOOK
    same = {"platform": facebook, "policy_name": "hate_speech", "content_hash": "sha256:quoted"}
    referred = await route(routing, submission(**same))  # type: ignore[arg-type]
    copy = await route(routing, submission(**same))  # type: ignore[arg-type]
    await refer(routing, referred, Target.OVERSIGHT_BOARD)

    board = bodies.grpc_as("referral_body", BOARD)
    listed = await bodies.stub.ListReferrals(referrals_pb2.ListReferralsRequest(), metadata=board)
    (referral,) = [r for r in listed.referrals if r.appeal_id == referred]
    assert referral.body == BOARD and not referral.overdue
    due = referral.respond_by.ToDatetime().replace(tzinfo=clock.now.tzinfo)
    assert abs(due - (clock.now + timedelta(days=90))) < timedelta(seconds=1)
    assert referral.package.question.startswith("Does quoting")
    assert referral.package.facts.platform == facebook and referral.package.referred_to == BOARD
    # Another body, and anyone else, learns nothing about the Board's referral.
    other = bodies.grpc_as("referral_body", USER_RIGHTS)
    elsewhere = await bodies.stub.ListReferrals(
        referrals_pb2.ListReferralsRequest(), metadata=other
    )
    assert referred not in [r.appeal_id for r in elsewhere.referrals]
    with pytest.raises(grpc.aio.AioRpcError) as not_theirs:
        await bodies.stub.DecideReferral(decision_request(referred, UPHELD), metadata=other)
    assert not_theirs.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as an_agent:
        await bodies.stub.DecideReferral(
            decision_request(referred, UPHELD), metadata=bodies.grpc_as("agent", "reviewer-2")
        )
    assert an_agent.value.code() == grpc.StatusCode.PERMISSION_DENIED

    async with EventTap(
        infra.kafka_bootstrap_servers, topics.restore_commands_topic(facebook)
    ) as restores:
        decided = await bodies.stub.DecideReferral(
            decision_request(referred, OVERTURNED), metadata=board
        )
        assert decided.outcome == OVERTURNED and list(decided.applied_to) == [copy]
        commands = await restores.until(
            lambda seen: {c.appeal_id for c in seen} >= {referred, copy}
        )
    assert all(isinstance(c, commands_pb2.RestoreCommand) for c in commands)
    seen = await lifecycle.until(lambda seen: bool(of(seen, referred, "decided")))
    (event,) = of(seen, referred, "decided")
    assert event.decided.referral_body == BOARD and event.decided.agent_id == BOARD
    assert event.decided.outcome == OVERTURNED and not event.decided.by_assistant
    (escalated,) = of(seen, referred, "escalated")
    assert escalated.escalated.package.referred_to == BOARD
    assert escalated.escalated.package.HasField("respond_by")

    # Binding and final: the same answer again is a no-op, another one is refused.
    again = await bodies.stub.DecideReferral(decision_request(referred, OVERTURNED), metadata=board)
    assert again.outcome == OVERTURNED
    with pytest.raises(grpc.aio.AioRpcError) as changed:
        await bodies.stub.DecideReferral(decision_request(referred, UPHELD), metadata=board)
    assert changed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = await bodies.stub.ListReferrals(referrals_pb2.ListReferralsRequest(), metadata=board)
    assert referred not in [r.appeal_id for r in listed.referrals]
    case = await routing.ledger.state(copy)
    assert case is not None and case.status == Status.DECIDED and case.applied_from == referred


async def test_an_out_of_court_body_decides_over_rest_and_only_its_own_referral(
    routing: routing_main.RoutingParts, bodies: Bodies, lifecycle: EventTap, infra: Infrastructure
) -> None:
    whatsapp = appeal_pb2.PLATFORM_WHATSAPP
    same = {"platform": whatsapp, "content_hash": "sha256:forwarded"}
    referred = await route(routing, submission(**same))  # type: ignore[arg-type]
    copy = await route(routing, submission(**same))  # type: ignore[arg-type]
    await routing.desk.claim(REVIEWER, referred)
    with pytest.raises(Exception, match="certified body"):
        await routing.desk.escalate(
            REVIEWER, referred, target=Target.OUT_OF_COURT, reason="r", question="q?",
            body="somebody",
        )  # fmt: skip
    await routing.desk.escalate(
        REVIEWER, referred, target=Target.OUT_OF_COURT, reason="The person asked for it.",
        question="Was the ban proportionate?", body="user_rights",
    )  # fmt: skip

    ods = bodies.http_as("referral_body", USER_RIGHTS)
    listed = await bodies.http.get("/v1/referrals", headers=ods)
    assert listed.status_code == 200, listed.text
    (item,) = [r for r in listed.json() if r["appeal_id"] == referred]
    assert (
        item["body"] == USER_RIGHTS and item["package"]["question"] == "Was the ban proportionate?"
    )
    board = bodies.http_as("referral_body", BOARD)
    body: dict[str, Any] = {
        "outcome": "overturned", "rationale": "The ban was disproportionate.",
        "policy_cited": "spam", "facts": "One forwarded message, no prior strikes.",
    }  # fmt: skip
    hidden = await bodies.http.post(f"/v1/referrals/{referred}/decision", json=body, headers=board)
    assert hidden.status_code == 404
    assert hidden.headers["content-type"].startswith("application/problem+json")
    invalid = await bodies.http.post(
        f"/v1/referrals/{referred}/decision", json={**body, "outcome": "maybe"}, headers=ods
    )
    assert invalid.status_code == 400

    async with EventTap(
        infra.kafka_bootstrap_servers, topics.restore_commands_topic(whatsapp)
    ) as restores:
        decided = await bodies.http.post(
            f"/v1/referrals/{referred}/decision", json=body, headers=ods
        )
        assert decided.status_code == 200, decided.text
        # The policy binds an out-of-court body's decision to its dispute only.
        assert decided.json() == {"appeal_id": referred, "outcome": "overturned", "applied_to": []}
        await restores.until(lambda seen: referred in {c.appeal_id for c in seen})
    seen = await lifecycle.until(lambda seen: bool(of(seen, referred, "decided")))
    assert of(seen, referred, "decided")[0].decided.referral_body == USER_RIGHTS
    case = await routing.ledger.state(copy)
    assert case is not None and case.status == Status.QUEUED


async def test_overdue_referrals_show_to_ops(
    routing: routing_main.RoutingParts, bodies: Bodies, clock: Clock
) -> None:
    referred = await route(routing, submission(platform=appeal_pb2.PLATFORM_INSTAGRAM))
    await refer(routing, referred, Target.OVERSIGHT_BOARD)
    ops = bodies.http_as("ops", "ops-1")
    overdue = await bodies.http.get("/v1/referrals", params={"overdue_only": "true"}, headers=ops)
    assert referred not in [r["appeal_id"] for r in overdue.json()]

    clock.advance(timedelta(days=91))
    overdue = await bodies.http.get("/v1/referrals", params={"overdue_only": "true"}, headers=ops)
    (item,) = [r for r in overdue.json() if r["appeal_id"] == referred]
    assert item["overdue"] is True
    setup_telemetry("referrals-tests", otlp_endpoint=None)  # the process's meter, once
    await routing.referral_watch.refresh()
    exposition = prometheus_exposition()[0].decode()
    overdue_lines = [
        line for line in exposition.splitlines()
        if line.startswith("appeals_routing_referrals_overdue") and f'body="{BOARD}"' in line
    ]  # fmt: skip
    assert overdue_lines and float(overdue_lines[0].rsplit(" ", 1)[1]) >= 1
    # A certified body with nothing out reports 0, not nothing.
    idle_body = [
        line for line in exposition.splitlines()
        if line.startswith("appeals_routing_referrals_open")
        and 'body="ods:appeals_centre_europe"' in line
    ]  # fmt: skip
    assert idle_body and float(idle_body[0].rsplit(" ", 1)[1]) == 0
    # A surface token reads no referrals at all.
    surface = await bodies.http.get("/v1/referrals", headers=bodies.http_as("surface", "ig"))
    assert surface.status_code == 403
