"""The agent desk against the real store and broker: exclusive claims, leases, decisions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from appeals.v1 import appeal_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store, topics
from appeals_runtime.auth import Principal, Role, Scope
from appeals_runtime.errors import Conflict, NotFound
from appeals_runtime.kafka.producer import EventProducer
from services.routing import repository
from services.routing.desk import AgentDesk
from services.routing.model import Case
from tests.integration.kafka_helpers import read_all

pytestmark = pytest.mark.integration


def agent(name: str, queues: frozenset[str] = frozenset({"*"})) -> Principal:
    return Principal(name, Role.AGENT, frozenset({Scope.WORK_CASES}), queues=queues)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def new_case(repo: repository.RoutingRepository, queue: str = "instagram.general.en") -> str:
    appeal_id = f"ap_{uuid.uuid4().hex[:12]}"
    submission = appeal_pb2.AppealSubmission(
        platform=appeal_pb2.PLATFORM_INSTAGRAM,
        subject=appeal_pb2.Subject(kind=appeal_pb2.SUBJECT_KIND_POST, id="42"),
        decision=appeal_pb2.OriginalDecision(id="dec-1", policy="spam", action="removed"),
    )
    now = datetime.now(UTC)
    await repo.insert_case(
        Case(appeal_id, queue, 50, now + timedelta(days=1), now, submission, "queued")
    )
    return appeal_id


@pytest.fixture
async def desk_parts(
    db: store.Database, producer: EventProducer
) -> tuple[AgentDesk, repository.RoutingRepository, Clock]:
    await store.ensure_indexes(db, repository.INDEXES)
    repo = repository.RoutingRepository(db)
    clock = Clock()
    return AgentDesk(repo, producer, lease=timedelta(minutes=5), clock=clock), repo, clock


async def test_of_many_agents_racing_for_a_case_exactly_one_gets_it(
    desk_parts: tuple[AgentDesk, repository.RoutingRepository, Clock],
) -> None:
    desk, repo, _ = desk_parts
    appeal_id = await new_case(repo)
    results = await asyncio.gather(
        *(desk.claim(agent(f"agent-{i}"), appeal_id) for i in range(8)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    case = await repo.get_case(appeal_id)
    assert case is not None and case.status == "in_review"
    assert case.claimed_by == winners[0][1].agent_id


async def test_an_expired_lease_returns_the_case_to_its_queue(
    desk_parts: tuple[AgentDesk, repository.RoutingRepository, Clock],
) -> None:
    desk, repo, clock = desk_parts
    appeal_id = await new_case(repo)
    await desk.claim(agent("first"), appeal_id)
    assert appeal_id not in [c.appeal_id for c in await desk.open_cases(None)]
    with pytest.raises(Conflict):
        await desk.claim(agent("second"), appeal_id)
    clock.now += timedelta(minutes=6)
    assert appeal_id in [c.appeal_id for c in await desk.open_cases(None)]
    _, claim = await desk.claim(agent("second"), appeal_id)
    assert (claim.agent_id, claim.epoch) == ("second", 2)
    with pytest.raises(Conflict):  # the first agent's lease is gone: it may not decide
        await desk.decide(
            agent("first"),
            appeal_id,
            outcome=appeal_pb2.OUTCOME_UPHELD,
            rationale="r",
            policy_cited="spam",
        )


async def test_deciding_needs_the_claim_happens_once_and_an_overturn_commands_a_restore(
    desk_parts: tuple[AgentDesk, repository.RoutingRepository, Clock], infra: Infrastructure
) -> None:
    desk, repo, _ = desk_parts
    appeal_id = await new_case(repo)
    reviewer = agent("reviewer")
    decide = dict(outcome=appeal_pb2.OUTCOME_OVERTURNED, rationale="Satire.", policy_cited="spam")
    with pytest.raises(Conflict):
        await desk.decide(reviewer, appeal_id, **decide)  # type: ignore[arg-type]
    await desk.claim(reviewer, appeal_id)
    first = await desk.decide(reviewer, appeal_id, **decide)  # type: ignore[arg-type]
    again = await desk.decide(reviewer, appeal_id, **decide)  # type: ignore[arg-type]
    assert first == again
    with pytest.raises(Conflict):
        await desk.decide(
            reviewer,
            appeal_id,
            outcome=appeal_pb2.OUTCOME_UPHELD,
            rationale="changed my mind",
            policy_cited="spam",
        )
    topic = topics.restore_commands_topic(appeal_pb2.PLATFORM_INSTAGRAM)
    records = await read_all(infra.kafka_bootstrap_servers, topic.name, expect=10_000, timeout_s=2)
    commands = [topic.decode(r.value) for r in records]
    mine = {c.command_id for c in commands if c.appeal_id == appeal_id}
    assert len(mine) == 1  # published twice (the retry), one command id: consumers dedup


async def test_agents_see_and_touch_only_their_queues(
    desk_parts: tuple[AgentDesk, repository.RoutingRepository, Clock],
) -> None:
    desk, repo, _ = desk_parts
    appeal_id = await new_case(repo, queue="whatsapp.integrity.pt")
    outsider = agent("outsider", frozenset({"facebook.general.en"}))
    assert appeal_id not in [c.appeal_id for c in await desk.open_cases(["facebook.general.en"])]
    with pytest.raises(NotFound):
        await desk.claim(outsider, appeal_id)
