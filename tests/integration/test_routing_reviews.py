"""Reviews beyond one reviewer, on the real store and broker: blind second reviews and their
disagreements, escalations (senior, legal, the Oversight Board with the case packaged),
transfers, decisions applied to identical content, and restore results."""

from __future__ import annotations

import uuid

import pytest

from appeals import topics
from appeals.v1 import appeal_pb2, commands_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime.auth import PermissionDenied
from appeals_runtime.errors import Conflict, InvalidMessage, ValidationFailed
from services.routing import main as routing_main
from services.routing.model import Round, Status, Target
from tests.support.desk import EventTap, agent, inbound, of, route, submission

pytestmark = pytest.mark.integration

UPHELD, OVERTURNED = appeal_pb2.OUTCOME_UPHELD, appeal_pb2.OUTCOME_OVERTURNED


async def review(parts: routing_main.RoutingParts, name: str, appeal_id: str, outcome: int) -> str:
    reviewer = agent(name)
    await parts.desk.claim(reviewer, appeal_id)
    result = await parts.desk.decide(
        reviewer, appeal_id, outcome=outcome, rationale=f"{name} looked.", policy_cited="spam",
        facts=f"What {name} found.",
    )  # fmt: skip
    return result.status


def high_reach() -> appeal_pb2.AppealSubmission:
    return submission(kind=appeal_pb2.SUBJECT_KIND_ACCOUNT, action="disabled", reach=5_000_000)


async def test_a_second_blind_review_that_agrees_decides_the_appeal(
    routing: routing_main.RoutingParts, lifecycle: EventTap
) -> None:
    appeal_id = await route(routing, high_reach())
    assert await review(routing, "first", appeal_id, OVERTURNED) == "second_review_pending"
    with pytest.raises(PermissionDenied, match="already reviewed"):
        await routing.desk.claim(agent("first"), appeal_id)
    offers = await routing.desk.next_offers(agent("second"), None, "s2")
    (offer,) = [o for o in offers if o.case.appeal_id == appeal_id]
    assert offer.case.round == Round.SECOND_BLIND
    assert await review(routing, "second", appeal_id, OVERTURNED) == "decided"
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "decided")))
    (decided,) = of(seen, appeal_id, "decided")
    assert (decided.decided.agent_id, list(decided.decided.concurring_agent_ids)) == (
        "second",
        ["first"],
    )
    # The first review went out as a release, its outcome unseen by anyone downstream.
    assert [e.released.reason for e in of(seen, appeal_id, "released")] == ["second_review"]


async def test_a_disagreement_goes_to_a_senior_who_decides_seeing_both_reviews(
    routing: routing_main.RoutingParts, lifecycle: EventTap
) -> None:
    appeal_id = await route(routing, high_reach())
    await review(routing, "first", appeal_id, UPHELD)
    assert await review(routing, "second", appeal_id, OVERTURNED) == "escalated_for_disagreement"
    state = await routing.ledger.state(appeal_id)
    assert state is not None
    assert (state.queue, state.round, state.status) == (
        "senior.en",
        Round.SENIOR_ADJUDICATION,
        Status.QUEUED,
    )
    senior = agent("senior-1", {"senior.en"})
    offers = await routing.desk.next_offers(senior, ["senior.en"], "s-senior")
    assert [o.case.appeal_id for o in offers] == [appeal_id]
    assert [r.agent_id for r in offers[0].case.reviews] == ["first", "second"]
    assert await review(routing, "senior-1", appeal_id, OVERTURNED) == "decided"
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "decided")))
    (escalated,) = of(seen, appeal_id, "escalated")
    assert escalated.escalated.target == Target.REVIEW_DISAGREEMENT
    assert [r.outcome for r in escalated.escalated.package.reviews] == [UPHELD, OVERTURNED]
    assert of(seen, appeal_id, "decided")[0].decided.agent_id == "senior-1"


async def test_escalations_to_senior_and_legal_and_a_board_referral_with_the_case_packaged(
    routing: routing_main.RoutingParts, lifecycle: EventTap
) -> None:
    reviewer = agent("reviewer")
    to_senior = await route(routing)
    await routing.desk.claim(reviewer, to_senior)
    after = await routing.desk.escalate(
        reviewer, to_senior, target=Target.SENIOR, reason="Novel satire question."
    )
    assert (after.queue, after.status) == ("senior.en", Status.QUEUED)

    to_legal = await route(routing, submission(country="FR"))
    await routing.desk.claim(reviewer, to_legal)
    after = await routing.desk.escalate(
        reviewer, to_legal, target=Target.LEGAL, reason="A court order is mentioned."
    )
    assert after.queue == "legal.EU"

    to_board = await route(routing, submission(platform=appeal_pb2.PLATFORM_FACEBOOK))
    await routing.desk.claim(reviewer, to_board)
    with pytest.raises(ValidationFailed, match="question"):
        await routing.desk.escalate(
            reviewer, to_board, target=Target.OVERSIGHT_BOARD, reason="Precedent."
        )
    after = await routing.desk.escalate(
        reviewer, to_board, target=Target.OVERSIGHT_BOARD, reason="Precedent.",
        question="Does quoting a slur to condemn it violate the policy?",
    )  # fmt: skip
    assert after.status == Status.REFERRED
    with pytest.raises(Conflict, match="referred to oversight_board"):
        await routing.desk.claim(agent("another"), to_board)

    not_eligible = await route(routing, submission(platform=appeal_pb2.PLATFORM_WHATSAPP))
    await routing.desk.claim(reviewer, not_eligible)
    with pytest.raises(Conflict, match="does not review whatsapp"):
        await routing.desk.escalate(
            reviewer, not_eligible, target=Target.OVERSIGHT_BOARD, reason="r", question="q?"
        )

    # Different appeals may sit on different partitions: wait for both escalations.
    seen = await lifecycle.until(
        lambda seen: bool(of(seen, to_board, "escalated") and of(seen, to_senior, "escalated"))
    )
    (board,) = of(seen, to_board, "escalated")
    assert board.escalated.target == "oversight_board" and board.escalated.to_queue == ""
    package = board.escalated.package
    assert package.question.startswith("Does quoting")
    assert package.facts.platform == appeal_pb2.PLATFORM_FACEBOOK
    # The package names the appeal; whoever takes it up reads the statement from intake.
    assert b"It was satire." not in board.SerializeToString()
    assert package.routing_rule == "default" and package.priority_reasons
    (senior,) = of(seen, to_senior, "escalated")
    assert (senior.escalated.from_queue, senior.escalated.to_queue) == (
        "instagram.integrity.en",
        "senior.en",
    )


async def test_a_transfer_moves_the_case_to_a_queue_the_policy_defines(
    routing: routing_main.RoutingParts, lifecycle: EventTap
) -> None:
    reviewer = agent("reviewer")
    appeal_id = await route(routing)
    await routing.desk.claim(reviewer, appeal_id)
    with pytest.raises(ValidationFailed, match="no queue"):
        await routing.desk.transfer(
            reviewer, appeal_id, to_queue="made.up.queue", reason="Wrong team."
        )
    after = await routing.desk.transfer(
        reviewer, appeal_id, to_queue="instagram.integrity.de", reason="Written in German."
    )
    assert (after.queue, after.status) == ("instagram.integrity.de", Status.QUEUED)
    assert after.placement.requirements.skills["language"] == "de"
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "transferred")))
    (moved,) = of(seen, appeal_id, "transferred")
    assert (moved.transferred.from_queue, moved.transferred.to_queue) == (
        "instagram.integrity.en",
        "instagram.integrity.de",
    )


async def test_an_overturn_applies_to_open_appeals_about_identical_content(
    routing: routing_main.RoutingParts, infra: Infrastructure, lifecycle: EventTap
) -> None:
    content = f"phash:{uuid.uuid4().hex}"
    source = await route(routing, submission(content_hash=content))
    copy = await route(routing, submission(content_hash=content))
    other_policy = await route(routing, submission(content_hash=content, policy_name="nudity"))
    claimed_copy = await route(routing, submission(content_hash=content))
    await routing.desk.claim(agent("busy"), claimed_copy)
    restore_topic = topics.restore_commands_topic(appeal_pb2.PLATFORM_INSTAGRAM)
    async with EventTap(infra.kafka_bootstrap_servers, restore_topic) as restores:
        await routing.desk.claim(agent("reviewer"), source)
        result = await routing.desk.decide(
            agent("reviewer"), source, outcome=OVERTURNED, rationale="Satire.",
            policy_cited="spam", facts="The post mocks spam.",
        )  # fmt: skip
        assert result.applied_to == (copy,)
        commands = await restores.until(lambda seen: {source, copy} <= {c.appeal_id for c in seen})
    assert {c.appeal_id for c in commands} & {other_policy, claimed_copy} == set()
    seen = await lifecycle.until(lambda seen: bool(of(seen, copy, "decided")))
    (copied,) = of(seen, copy, "decided")
    assert copied.decided.applied_from_appeal_id == source
    assert copied.decided.agent_id == "reviewer"
    for untouched in (other_policy, claimed_copy):
        state = await routing.ledger.state(untouched)
        assert state is not None and state.status != Status.DECIDED


async def test_a_restore_result_becomes_one_restored_event(
    routing: routing_main.RoutingParts, lifecycle: EventTap
) -> None:
    appeal_id = f"ap_{uuid.uuid4().hex[:12]}"
    result = commands_pb2.RestoreResult(
        command_id="cmd-1",
        appeal_id=appeal_id,
        platform=appeal_pb2.PLATFORM_INSTAGRAM,
        succeeded=True,
        detail="post visible again",
    )
    await routing.handler(inbound(result, topics.RESTORE_RESULTS.name))
    await routing.handler(inbound(result, topics.RESTORE_RESULTS.name))  # reported twice
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "restored")))
    (restored,) = of(seen, appeal_id, "restored")
    assert (restored.restored.command_id, restored.restored.succeeded) == ("cmd-1", True)
    with pytest.raises(InvalidMessage):
        await routing.handler(inbound(commands_pb2.RestoreResult(), topics.RESTORE_RESULTS.name))
