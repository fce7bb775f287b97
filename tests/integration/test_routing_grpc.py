"""The AgentDesk gRPC API with real tokens, store and broker: what a desk client sees."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2
from appeals_cli import reviewer
from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_runtime import store
from appeals_runtime.grpc_server import GrpcServer
from appeals_runtime.kafka.producer import EventProducer
from services.routing import grpc_api
from services.routing import main as routing_main
from services.routing.model import CaseState
from tests.support.desk import Clock, build_routing, eventually, policy_with, route, submission
from tests.support.particulars import APPELLANTS

pytestmark = pytest.mark.integration


class Desk:
    def __init__(self, channel: grpc.aio.Channel, signing_key: Path, target: str) -> None:
        self.stub = agent_desk_pb2_grpc.AgentDeskStub(channel)
        self.target = target
        self._signing_key = signing_key

    def token(self, name: str, queues: list[str] | None = None) -> str:
        return devkeys.mint_token(
            self._signing_key, role="agent", subject=name, queues=queues or ["*"]
        )

    def as_agent(self, name: str, queues: list[str] | None = None) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.token(name, queues)}"),)


@contextlib.asynccontextmanager
async def serving(parts: routing_main.RoutingParts, key_dir: Path) -> AsyncIterator[Desk]:
    """The routing instance's real AgentDesk servicer on a free port, with dev tokens."""
    signing_key, jwks = devkeys.ensure(key_dir)
    verifier = devkeys.dev_verifier(jwks)
    port = free_port()
    server = GrpcServer(
        grpc_api.register(grpc_api.AgentDeskServicer(parts.desk, verifier, poll_s=0.1)),
        host="127.0.0.1",
        port=port,
    )
    task = asyncio.create_task(server.run())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Desk(channel, signing_key, f"127.0.0.1:{port}")
    finally:
        await server.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def served(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> AsyncIterator[tuple[Desk, routing_main.RoutingParts]]:
    parts = await build_routing(db, producer, Clock(), lease=timedelta(minutes=5))
    async with serving(parts, tmp_path) as desk:
        yield desk, parts


async def first_offer(
    desk: Desk, metadata: tuple[tuple[str, str]], appeal_id: str
) -> agent_desk_pb2.CaseOffer:
    stream = desk.stub.StreamCases(agent_desk_pb2.StreamCasesRequest(), metadata=metadata)
    try:
        async with asyncio.timeout(10):
            async for offer in stream:
                if offer.appeal_id == appeal_id:
                    found: agent_desk_pb2.CaseOffer = offer
                    return found
    finally:
        stream.cancel()
    raise AssertionError("never offered")


async def test_a_registered_agent_streams_claims_heartbeats_and_decides(
    served: tuple[Desk, routing_main.RoutingParts],
) -> None:
    desk, parts = served
    alice = desk.as_agent("alice")
    profile = await desk.stub.RegisterAgent(
        agent_desk_pb2.RegisterAgentRequest(
            profile=agent_desk_pb2.AgentProfile(
                languages=["en"], platforms=["instagram"], policy_areas=["integrity"],
                seniority="experienced", capacity=2,
            )
        ),
        metadata=alice,
    )  # fmt: skip
    assert (profile.agent_id, profile.capacity, profile.seniority) == ("alice", 2, "experienced")
    appeal_id = await route(parts)
    offer = await first_offer(desk, alice, appeal_id)
    assert offer.queue == "instagram.integrity.en" and offer.HasField("offer_expires_at")
    assert offer.round == agent_desk_pb2.REVIEW_ROUND_FIRST and offer.priority_reasons
    # An offer shows the facts; the statement is read from intake for whoever claims the case.
    assert offer.facts.decision.policy == "spam" and offer.statement == ""
    claimed = await desk.stub.Claim(
        agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=alice
    )
    assert claimed.case.statement == "It was satire."
    assert claimed.case.facts.platform == appeal_pb2.PLATFORM_INSTAGRAM
    beat = await desk.stub.Heartbeat(
        agent_desk_pb2.HeartbeatRequest(appeal_id=appeal_id), metadata=alice
    )
    assert beat.lease_expires_at.ToDatetime() >= claimed.lease_expires_at.ToDatetime()

    with pytest.raises(grpc.aio.AioRpcError) as no_facts:
        await desk.stub.Decide(
            agent_desk_pb2.DecideRequest(
                appeal_id=appeal_id, outcome=appeal_pb2.OUTCOME_OVERTURNED,
                rationale="Satire.", policy_cited="spam",
            ),
            metadata=alice,
        )  # fmt: skip
    assert no_facts.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    decided = await desk.stub.Decide(
        agent_desk_pb2.DecideRequest(
            appeal_id=appeal_id, outcome=appeal_pb2.OUTCOME_OVERTURNED, rationale="Satire.",
            policy_cited="spam", facts="The post parodies spam; it links nowhere.",
        ),
        metadata=alice,
    )  # fmt: skip
    assert decided.status == agent_desk_pb2.DECISION_STATUS_DECIDED


async def test_a_claim_while_intake_is_unavailable_claims_nothing_and_can_simply_be_repeated(
    served: tuple[Desk, routing_main.RoutingParts],
) -> None:
    desk, parts = served
    carol = desk.as_agent("carol")
    appeal_id = await route(parts)
    APPELLANTS.down = True
    try:
        with pytest.raises(grpc.aio.AioRpcError) as unavailable:
            await desk.stub.Claim(agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=carol)
    finally:
        APPELLANTS.down = False
    assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE
    case = await parts.ledger.state(appeal_id)
    assert case is not None and case.hold is None  # nothing was claimed
    claimed = await desk.stub.Claim(
        agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=carol
    )
    assert claimed.case.statement == "It was satire."


async def test_the_original_decider_gets_permission_denied(
    served: tuple[Desk, routing_main.RoutingParts],
) -> None:
    desk, parts = served
    appeal_id = await route(parts, submission(decided_by="mod-7"))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await desk.stub.Claim(
            agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=desk.as_agent("mod-7")
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "original decision" in (denied.value.details() or "")


async def test_escalate_transfer_and_presence_over_grpc(
    served: tuple[Desk, routing_main.RoutingParts],
) -> None:
    desk, parts = served
    bob = desk.as_agent("bob")
    appeal_id = await route(parts, submission(platform=appeal_pb2.PLATFORM_FACEBOOK))
    await desk.stub.Claim(agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=bob)
    moved = await desk.stub.Transfer(
        agent_desk_pb2.TransferRequest(
            appeal_id=appeal_id, to_queue="facebook.integrity.fr", reason="In French."
        ),
        metadata=bob,
    )
    assert moved.queue == "facebook.integrity.fr"
    await desk.stub.Claim(agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=bob)
    referred = await desk.stub.Escalate(
        agent_desk_pb2.EscalateRequest(
            appeal_id=appeal_id, target=agent_desk_pb2.ESCALATION_TARGET_OVERSIGHT_BOARD,
            reason="Precedent.", question="Where is the line for parody?",
        ),
        metadata=bob,
    )  # fmt: skip
    assert referred.queue == ""
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await desk.stub.Claim(agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=bob)
    assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    away = await desk.stub.SetPresence(
        agent_desk_pb2.SetPresenceRequest(presence=agent_desk_pb2.PRESENCE_AWAY), metadata=bob
    )
    assert away.presence == agent_desk_pb2.PRESENCE_AWAY
    outsider = desk.as_agent("outsider", ["whatsapp.general.en"])
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await desk.stub.Claim(agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=outsider)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_cli_reviewer_keeps_its_claim_however_long_the_person_takes(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    """`appeals agent` registers what it reads, then renews its claim while the person reads and
    writes: the desk's clock runs through more than two leases before the decision, which still
    lands."""
    clock = Clock()
    lease = timedelta(minutes=5)
    # As shipped: nothing is offered before the reviewer registers what it reads.
    parts = await build_routing(db, producer, clock, policy_with(registered_only=True), lease=lease)
    appeal_id = await route(parts)

    def held_by_bob(case: CaseState | None) -> bool:
        return case is not None and case.held_by("bob", clock())

    async with serving(parts, tmp_path) as desk:
        thinking = asyncio.Event()
        said: list[str] = []

        async def slow_person() -> int:
            return await reviewer.review(
                desk.target, desk.token("bob"), auto=True, count=1, say=said.append,
                pause_s=3.0, heartbeat_s=0.1, profile=reviewer.skills_profile(["en"]),
            )  # fmt: skip

        async def time_passes() -> None:
            # Two minutes of desk time per 0.3 s: 12 minutes while the person "thinks",
            # and never more than a lease between two heartbeats.
            await thinking.wait()
            for _ in range(6):
                await asyncio.sleep(0.3)
                clock.advance(timedelta(minutes=2))

        async def claimed() -> None:
            await eventually(lambda: held_by_bob(parts.board.get(appeal_id)))
            thinking.set()

        decided, *_ = await asyncio.wait_for(
            asyncio.gather(slow_person(), time_passes(), claimed()), 30
        )
    assert decided == 1
    assert said == [f"decided {appeal_id}: overturned (instagram.integrity.en)"], said


async def test_a_person_at_the_cli_escalates_one_case_and_partially_overturns_another(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    clock = Clock()
    parts = await build_routing(db, producer, clock, policy_with(registered_only=True))
    escalate, partial = await route(parts), await route(parts)
    choices: dict[str, reviewer.Choice] = {
        escalate: reviewer.Escalation(agent_desk_pb2.ESCALATION_TARGET_SENIOR, "Borderline."),
        partial: reviewer.Verdict(
            appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED, "A label is enough.", "spam",
            "The post is commentary on spam, with one stray link.",
        ),
    }  # fmt: skip
    said: list[str] = []
    async with serving(parts, tmp_path) as desk:
        decided = await asyncio.wait_for(
            reviewer.review(
                desk.target, desk.token("erin"), auto=False, count=1, say=said.append,
                profile=reviewer.skills_profile(["en"]),
                ask=lambda case: choices[case.appeal_id],
            ),
            30,
        )  # fmt: skip
    assert decided == 1
    assert said == [
        f"escalated {escalate} to senior.en",
        f"decided {partial}: partially_overturned (instagram.integrity.en)",
    ], said
    steps = {
        appeal_id: [(r.kind, r.placement.queue if r.placement else "", r.verdict)
                    for r in await parts.repository.records(appeal_id)]
        for appeal_id in (escalate, partial)
    }  # fmt: skip
    assert steps[escalate][-1][:2] == ("escalated", "senior.en"), steps[escalate]
    kind, _, verdict = steps[partial][-1]
    assert kind == "decided" and verdict is not None, steps[partial]
    assert verdict.outcome == appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED and not verdict.by_assistant
