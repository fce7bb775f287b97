"""The agent desk against the real store and broker: exclusive claims, leases, decisions."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from appeals import topics
from appeals.v1 import appeal_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.auth import PermissionDenied
from appeals_runtime.errors import Conflict, NotFound, ValidationFailed
from appeals_runtime.kafka.producer import EventProducer
from services.routing import main as routing_main
from services.routing.model import Kind, Status
from services.routing.policy import AgentSkills
from tests.support.desk import (
    LEASE,
    OVERTURNED,
    UPHELD,
    Clock,
    EventTap,
    agent,
    build_routing,
    of,
    route,
    submission,
)

pytestmark = pytest.mark.integration


async def test_of_many_agents_racing_for_a_case_exactly_one_gets_it(
    routing: routing_main.RoutingParts,
) -> None:
    appeal_id = await route(routing)
    results = await asyncio.gather(
        *(routing.desk.claim(agent(f"agent-{i}"), appeal_id) for i in range(8)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    records = await routing.repository.records(appeal_id)
    assert [r.kind for r in records] == [Kind.ROUTED, Kind.CLAIMED]
    state = await routing.ledger.state(appeal_id)
    assert state is not None and state.hold is not None
    assert state.hold.agent_id == winners[0].hold.agent_id  # type: ignore[union-attr]


async def test_an_expired_lease_returns_the_case_to_its_queue_once(
    db: store.Database,
    producer: EventProducer,
    clock: Clock,
    routing: routing_main.RoutingParts,
    lifecycle: EventTap,
) -> None:
    other_instance = await build_routing(db, producer, clock)
    appeal_id = await route(routing)
    await routing.desk.claim(agent("first"), appeal_id)
    assert appeal_id not in [c.appeal_id for c in await routing.desk.open_cases(None)]
    with pytest.raises(Conflict):
        await routing.desk.claim(agent("second"), appeal_id)
    clock.advance(LEASE - timedelta(seconds=1))
    await routing.desk.heartbeat(agent("first"), appeal_id)  # extends the lease
    clock.advance(timedelta(minutes=1))
    assert (await routing.timers.sweep()).leases_expired == 0
    clock.advance(LEASE)
    # Both instances' timers see the expired lease; exactly one release is recorded.
    reports = await asyncio.gather(routing.timers.sweep(), other_instance.timers.sweep())
    assert sum(report.leases_expired for report in reports) == 1
    assert appeal_id in [c.appeal_id for c in await routing.desk.open_cases(None)]
    with pytest.raises(Conflict, match="lease ran out"):
        await routing.desk.heartbeat(agent("first"), appeal_id)
    await routing.desk.claim(agent("second"), appeal_id)
    with pytest.raises(Conflict):  # the first agent's lease is gone: it may not decide
        await routing.desk.decide(
            agent("first"), appeal_id, outcome=UPHELD, rationale="r", policy_cited="spam"
        )
    events = await lifecycle.until(lambda seen: len(of(seen, appeal_id, "claimed")) == 2)
    released = of(events, appeal_id, "released")
    assert [(e.released.agent_id, e.released.reason) for e in released] == [
        ("first", "lease_expired")
    ]


async def test_deciding_needs_the_claim_happens_once_and_an_overturn_commands_a_restore(
    routing: routing_main.RoutingParts, infra: Infrastructure, lifecycle: EventTap
) -> None:
    appeal_id = await route(routing)
    reviewer = agent("reviewer")
    decide = dict(outcome=OVERTURNED, rationale="Satire.", policy_cited="spam")
    with pytest.raises(Conflict):
        await routing.desk.decide(reviewer, appeal_id, **decide)  # type: ignore[arg-type]
    await routing.desk.claim(reviewer, appeal_id)
    topic = topics.restore_commands_topic(appeal_pb2.PLATFORM_INSTAGRAM)
    async with EventTap(infra.kafka_bootstrap_servers, topic) as restores:
        first = await routing.desk.decide(reviewer, appeal_id, **decide)  # type: ignore[arg-type]
        again = await routing.desk.decide(reviewer, appeal_id, **decide)  # type: ignore[arg-type]
        assert first.verdict == again.verdict and first.status == again.status == "decided"
        with pytest.raises(Conflict):
            await routing.desk.decide(
                reviewer,
                appeal_id,
                outcome=UPHELD,
                rationale="changed my mind",
                policy_cited="spam",
            )
        commands = await restores.until(lambda seen: any(c.appeal_id == appeal_id for c in seen))
    assert len({c.command_id for c in commands if c.appeal_id == appeal_id}) == 1
    events = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "decided")))
    (decided,) = of(events, appeal_id, "decided")
    assert decided.decided.agent_id == "reviewer"
    # An unregistered (older) client sent no facts: the case's own facts are on record, never
    # the appellant's statement (the facts are published in the statement of reasons).
    assert "was removed" in decided.decided.facts and "satire" not in decided.decided.facts


async def test_a_decision_says_whether_a_person_or_an_automated_assistant_made_it(
    routing: routing_main.RoutingParts, lifecycle: EventTap
) -> None:
    """The agent token's `reviewer` claim travels with the decision, in the case's stored record
    and its event, so that only people's decisions count as human review downstream."""
    by_person, by_assistant = await route(routing), await route(routing)
    person, assistant = agent("moderator-1"), agent("triage-bot", assistant=True)
    for reviewer, appeal_id in ((person, by_person), (assistant, by_assistant)):
        await routing.desk.claim(reviewer, appeal_id)
        await routing.desk.decide(
            reviewer, appeal_id, outcome=UPHELD, rationale="Spam.", policy_cited="spam",
            facts="The post links a scam shop.",
        )  # fmt: skip
    events = await lifecycle.until(
        lambda seen: bool(of(seen, by_person, "decided") and of(seen, by_assistant, "decided"))
    )
    assert [e.decided.by_assistant for e in of(events, by_person, "decided")] == [False]
    assert [e.decided.by_assistant for e in of(events, by_assistant, "decided")] == [True]
    stored = [r.verdict for r in await routing.repository.records(by_assistant) if r.verdict]
    assert [verdict.by_assistant for verdict in stored] == [True]


async def test_registered_agents_must_state_the_facts(routing: routing_main.RoutingParts) -> None:
    reviewer = agent("careful")
    anything = frozenset({"*"})
    skills = AgentSkills(anything, anything, anything, seniority="senior")
    await routing.desk.register(reviewer, skills, capacity=2)
    appeal_id = await route(routing)
    await routing.desk.claim(reviewer, appeal_id)
    with pytest.raises(ValidationFailed) as missing:
        await routing.desk.decide(
            reviewer, appeal_id, outcome=appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED,
            rationale="Label instead of removal.", policy_cited="spam",
        )  # fmt: skip
    assert [v.field for v in missing.value.violations] == ["facts"]
    result = await routing.desk.decide(
        reviewer, appeal_id, outcome=appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED,
        rationale="Label instead of removal.", policy_cited="spam",
        facts="The post links a scam shop; the text itself is commentary.",
    )  # fmt: skip
    assert result.case.status == Status.DECIDED
    assert result.verdict.facts.startswith("The post links")


async def test_agents_see_and_touch_only_their_queues(routing: routing_main.RoutingParts) -> None:
    appeal_id = await route(routing, submission(platform=appeal_pb2.PLATFORM_WHATSAPP))
    state = await routing.ledger.state(appeal_id)
    assert state is not None and state.queue == "whatsapp.integrity.en"
    outsider = agent("outsider", {"facebook.general.en"})
    assert appeal_id not in [
        c.appeal_id for c in await routing.desk.open_cases(["facebook.general.en"])
    ]
    offers = await routing.desk.next_offers(outsider, ["facebook.general.en"], "stream-1")
    assert appeal_id not in [o.case.appeal_id for o in offers]
    with pytest.raises(NotFound):
        await routing.desk.claim(outsider, appeal_id)
    with pytest.raises(PermissionDenied):
        routing.desk.queues_for(outsider, ["whatsapp.integrity.en"])


async def test_the_original_decider_is_never_offered_and_cannot_claim_the_appeal(
    routing: routing_main.RoutingParts,
) -> None:
    appeal_id = await route(routing, submission(decided_by="moderator-42"))
    decider, colleague = agent("moderator-42"), agent("moderator-43")
    offered = await routing.desk.next_offers(decider, None, "s-decider")
    assert appeal_id not in [o.case.appeal_id for o in offered]
    with pytest.raises(PermissionDenied, match="original decision"):
        await routing.desk.claim(decider, appeal_id)
    offered = await routing.desk.next_offers(colleague, None, "s-colleague")
    assert appeal_id in [o.case.appeal_id for o in offered]
    await routing.desk.claim(colleague, appeal_id)
    result = await routing.desk.decide(
        colleague, appeal_id, outcome=UPHELD, rationale="Spam.", policy_cited="spam"
    )
    assert result.verdict.agent_id == "moderator-43"
