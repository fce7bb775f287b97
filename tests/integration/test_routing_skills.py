"""Assignment on the real store: skills that relax with waiting (controllable clock), capacity,
presence, priority order and offers reserved for one agent at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from appeals.v1 import appeal_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.auth import PermissionDenied
from appeals_runtime.errors import Conflict, ValidationFailed
from appeals_runtime.kafka.producer import EventProducer
from services.routing import main as routing_main
from services.routing.model import Presence
from services.routing.policy import AgentSkills
from tests.support.desk import (
    Clock,
    agent,
    build_routing,
    eventually,
    policy_with,
    route,
    running_feed,
    submission,
)

pytestmark = pytest.mark.integration


def skills(
    languages: set[str], platforms: set[str], areas: set[str], seniority: str = "junior"
) -> AgentSkills:
    return AgentSkills(frozenset(languages), frozenset(platforms), frozenset(areas), seniority)


@pytest.fixture
async def routing(
    db: store.Database, producer: EventProducer, clock: Clock
) -> routing_main.RoutingParts:
    return await build_routing(db, producer, clock, policy_with(registered_only=True))


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def offered_ids(parts: routing_main.RoutingParts, name: str, stream: str = "s") -> list[str]:
    return [o.case.appeal_id for o in await parts.desk.next_offers(agent(name), None, stream)]


async def test_skill_requirements_relax_with_waiting_but_never_below_the_mandatory_language(
    routing: routing_main.RoutingParts, clock: Clock
) -> None:
    german_generalist, english_expert = agent("de-generalist"), agent("en-expert")
    await routing.desk.register(german_generalist, skills({"de"}, {"facebook"}, {"integrity"}), 2)
    await routing.desk.register(
        english_expert, skills({"en"}, {"instagram"}, {"hate_and_harassment"}, "senior"), 2
    )
    appeal_id = await route(
        routing, submission(policy_name="hate_speech", locale="de-DE"), at=clock.now
    )

    async def who_is_offered() -> set[str]:
        offered = set()
        for name in ("de-generalist", "en-expert"):
            if appeal_id in await offered_ids(routing, name, stream=f"{name}-{clock.now}"):
                offered.add(name)
                await routing.desk.offers.withdraw_case(appeal_id)
        return offered

    assert await who_is_offered() == set()
    clock.advance(timedelta(minutes=31))  # policy area relaxed; platform still required
    assert await who_is_offered() == set()
    clock.advance(timedelta(hours=2))  # platform relaxed too
    assert await who_is_offered() == {"de-generalist"}
    clock.advance(timedelta(days=3))  # language is mandatory: never relaxed
    assert await who_is_offered() == {"de-generalist"}
    with pytest.raises(PermissionDenied, match="needs skills"):
        await routing.desk.claim(english_expert, appeal_id)
    await routing.desk.claim(german_generalist, appeal_id)


async def test_capacity_and_presence_limit_what_an_agent_is_offered(
    routing: routing_main.RoutingParts,
) -> None:
    reviewer = agent("solo")
    await routing.desk.register(reviewer, skills({"*"}, {"*"}, {"*"}, "senior"), 1)
    first, second = await route(routing), await route(routing)
    offered = await offered_ids(routing, "solo")
    assert len(offered) == 1  # capacity 1: one reservation at a time
    await routing.desk.claim(reviewer, offered[0])
    assert await offered_ids(routing, "solo") == []
    other = second if offered[0] == first else first
    with pytest.raises(Conflict, match="capacity"):
        await routing.desk.claim(reviewer, other)
    await routing.desk.decide(
        reviewer, offered[0], outcome=appeal_pb2.OUTCOME_UPHELD, rationale="Spam.",
        policy_cited="spam", facts="Forty identical links in an hour.",
    )  # fmt: skip
    await routing.desk.set_presence(reviewer, Presence.AWAY)
    assert await offered_ids(routing, "solo") == []  # away: keeps working, gets no new cases
    await routing.desk.set_presence(reviewer, Presence.ONLINE)
    assert await offered_ids(routing, "solo") == [other]


async def test_offers_go_highest_priority_first_then_oldest(
    routing: routing_main.RoutingParts, clock: Clock
) -> None:
    reviewer = agent("ordered")
    await routing.desk.register(reviewer, skills({"*"}, {"*"}, {"*"}, "senior"), 10)
    older_low = await route(routing, submission(action="restricted"), at=clock.now)
    clock.advance(timedelta(minutes=1))
    urgent = await route(
        routing,
        submission(kind=appeal_pb2.SUBJECT_KIND_ACCOUNT, action="disabled"),
        at=clock.now,
    )
    clock.advance(timedelta(minutes=1))
    newer_low = await route(routing, submission(action="restricted"), at=clock.now)
    assert await offered_ids(routing, "ordered") == [urgent, older_low, newer_low]


async def test_a_case_is_offered_to_one_agent_at_a_time_across_instances(
    db: store.Database,
    producer: EventProducer,
    routing: routing_main.RoutingParts,
    clock: Clock,
    infra: Infrastructure,
) -> None:
    # The other instance learns what this one routes through its case feed, as in production.
    other_instance = await build_routing(
        db, producer, clock, policy_with(registered_only=True),
        bootstrap_servers=infra.kafka_bootstrap_servers,
    )  # fmt: skip
    async with running_feed(other_instance):
        await _offered_across_instances(routing, other_instance, clock)


async def _offered_across_instances(
    routing: routing_main.RoutingParts, other_instance: routing_main.RoutingParts, clock: Clock
) -> None:
    for name in ("ann", "ben"):
        await routing.desk.register(agent(name), skills({"*"}, {"*"}, {"*"}, "senior"), 3)
    cases = {await route(routing) for _ in range(3)}
    await eventually(lambda: all(case in other_instance.board for case in cases))
    ann, ben = await asyncio.gather(
        routing.desk.next_offers(agent("ann"), None, "ann-stream"),
        other_instance.desk.next_offers(agent("ben"), None, "ben-stream"),
    )
    ann_ids, ben_ids = {o.case.appeal_id for o in ann}, {o.case.appeal_id for o in ben}
    assert ann_ids | ben_ids == cases and not ann_ids & ben_ids
    # Which instance reserved which cases depends on timing (one may take all three): the case
    # tried is one the other agent holds an offer for.
    if ann_ids:
        victim, thief, thief_name = next(iter(ann_ids)), other_instance, "ben"
    else:
        victim, thief, thief_name = next(iter(ben_ids)), routing, "ann"
    with pytest.raises(Conflict, match="offered to another reviewer"):
        await thief.desk.claim(agent(thief_name), victim)

    # Ann lets her offers lapse: they go to Ben, not straight back to Ann.
    clock.advance(timedelta(seconds=31))
    assert set(await offered_ids(routing, "ann", "ann-stream")) == ben_ids
    assert set(await offered_ids(other_instance, "ben", "ben-stream")) == ann_ids
    await thief.desk.claim(agent(thief_name), victim)


async def test_closing_a_stream_gives_its_reservations_back_at_once(
    routing: routing_main.RoutingParts,
) -> None:
    for name in ("cat", "dan"):
        await routing.desk.register(agent(name), skills({"*"}, {"*"}, {"*"}, "senior"), 3)
    appeal_id = await route(routing)
    await routing.desk.stream_opened(agent("cat"))
    assert await offered_ids(routing, "cat", "cat-stream") == [appeal_id]
    assert (await routing.desk.profile(agent("cat"))).presence == Presence.ONLINE
    assert await offered_ids(routing, "dan", "dan-stream") == []
    await routing.desk.stream_closed(agent("cat"), "cat-stream")
    assert (await routing.desk.profile(agent("cat"))).presence == Presence.OFFLINE
    assert await offered_ids(routing, "dan", "dan-stream") == [appeal_id]


async def test_the_shipped_policy_offers_nothing_before_registration_and_wants_facts(
    routing: routing_main.RoutingParts,
) -> None:
    """`make run` serves the policy as shipped: an agent that never registered its skills is
    offered nothing and may not claim (the error names the skills the case needs), and once
    registered its decision needs facts like everyone's."""
    appeal_id = await route(routing)
    assert await offered_ids(routing, "newcomer") == []
    with pytest.raises(PermissionDenied) as refused:
        await routing.desk.claim(agent("newcomer"), appeal_id)
    assert "language=en (mandatory)" in str(refused.value)

    await routing.desk.register(
        agent("newcomer"), skills({"en"}, {"instagram"}, {"integrity"}), capacity=1
    )
    assert await offered_ids(routing, "newcomer") == [appeal_id]
    await routing.desk.claim(agent("newcomer"), appeal_id)
    with pytest.raises(ValidationFailed) as no_facts:
        await routing.desk.decide(
            agent("newcomer"), appeal_id, outcome=appeal_pb2.OUTCOME_UPHELD,
            rationale="Spam as written.", policy_cited="spam",
        )  # fmt: skip
    assert [violation.field for violation in no_facts.value.violations] == ["facts"]
