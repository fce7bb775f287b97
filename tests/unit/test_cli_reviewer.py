"""`appeals agent`: how often it renews a claim, and what a person can do with a case."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from appeals.v1 import agent_desk_pb2, appeal_pb2
from appeals_cli.demo import demo_choice
from appeals_cli.reviewer import (
    AskAppellant,
    Escalation,
    Transfer,
    Verdict,
    ask_person,
    heartbeat_interval,
)


def claimed_until(moment: datetime) -> agent_desk_pb2.ClaimResponse:
    claimed = agent_desk_pb2.ClaimResponse(appeal_id="a")
    claimed.lease_expires_at.FromDatetime(moment)
    return claimed


def test_a_claim_is_renewed_three_times_per_lease() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert heartbeat_interval(claimed_until(now + timedelta(minutes=15)), now) == 300


def test_a_short_or_already_lapsed_lease_is_renewed_every_second() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert heartbeat_interval(claimed_until(now + timedelta(seconds=2)), now) == 1.0
    assert heartbeat_interval(claimed_until(now - timedelta(seconds=5)), now) == 1.0


def offered_case() -> agent_desk_pb2.CaseOffer:
    case = agent_desk_pb2.CaseOffer(appeal_id="ap_1", queue="instagram.integrity.en")
    case.facts.decision.policy = "spam"
    case.facts.decision.action = "removed"
    return case


def answers(*lines: str) -> Callable[[str], str]:
    given = iter(lines)
    return lambda _prompt: next(given)


def test_a_person_can_partially_overturn_escalate_transfer_or_release() -> None:
    case = offered_case()
    partial = ask_person(case, answers("p", "Label, not removal.", "The post is commentary."))
    assert partial == Verdict(
        appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED, "Label, not removal.", "spam",
        "The post is commentary.",
    )  # fmt: skip
    assert ask_person(case, answers("e", "legal", "A court order may apply.")) == Escalation(
        agent_desk_pb2.ESCALATION_TARGET_LEGAL, "A court order may apply."
    )
    assert ask_person(case, answers("e", "board", "Newsworthy.", "Is satire allowed?")) == (
        Escalation(agent_desk_pb2.ESCALATION_TARGET_OVERSIGHT_BOARD, "Newsworthy.",
                   "Is satire allowed?")
    )  # fmt: skip
    ods = ask_person(case, answers("e", "ods", "user_rights", "Asked for.", "Proportionate?"))
    assert ods == Escalation(
        agent_desk_pb2.ESCALATION_TARGET_OUT_OF_COURT, "Asked for.", "Proportionate?",
        "user_rights",
    )  # fmt: skip
    assert ask_person(case, answers("t", "senior.en", "")) == Transfer(
        "senior.en", "Another queue's skills fit."
    )
    assert ask_person(case, answers("i", "A screenshot of the original post?")) == AskAppellant(
        "A screenshot of the original post?"
    )
    assert ask_person(case, answers("r")) is None
    assert ask_person(case, answers("e", "nowhere")) is None  # an unknown target: released


def demo_case(policy: str, queue: str, *, answered: bool = False) -> agent_desk_pb2.CaseOffer:
    case = agent_desk_pb2.CaseOffer(appeal_id="a", queue=queue, statement="Nothing to add.")
    case.facts.decision.policy = policy
    if answered:
        case.information.add(question="Proof?", answer="Attached.")
    return case


def test_the_demo_reviewers_take_every_step_and_each_path_ends_in_a_decision() -> None:
    ask = demo_choice(demo_case("impersonation", "facebook.integrity.it"))
    assert isinstance(ask, AskAppellant)
    answered = demo_choice(demo_case("impersonation", "facebook.integrity.it", answered=True))
    assert isinstance(answered, Verdict)
    up = demo_choice(demo_case("harassment", "horizon.hate_and_harassment.en"))
    assert isinstance(up, Escalation) and up.target == agent_desk_pb2.ESCALATION_TARGET_SENIOR
    assert isinstance(demo_choice(demo_case("harassment", "senior.en")), Verdict)
    moved = demo_choice(demo_case("dangerous_organizations", "facebook.violence.ar"))
    assert isinstance(moved, Transfer) and moved.queue == "facebook.specialist.violence.ar"
    there = demo_choice(demo_case("dangerous_organizations", "facebook.specialist.violence.ar"))
    assert isinstance(there, Verdict)
    partial = demo_choice(demo_case("bullying", "instagram.hate_and_harassment.id"))
    assert isinstance(partial, Verdict)
    assert partial.outcome == appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED and partial.facts
