"""Routing policy: rules, queues, priorities and SLA due times from the shipped YAML (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appeals.v1 import appeal_pb2
from services.routing import documents, policy
from services.routing.policy_file import DEFAULT_POLICY_FILE, load_policy
from services.routing.policy_schema import RoutingPolicy

RECEIVED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shipped() -> RoutingPolicy:
    return load_policy(DEFAULT_POLICY_FILE)


def submission(
    *,
    platform: int = appeal_pb2.PLATFORM_INSTAGRAM,
    kind: int = appeal_pb2.SUBJECT_KIND_POST,
    policy_name: str = "hate_speech",
    action: str = "removed",
    automated: bool = False,
    locale: str = "de-DE",
    country: str = "",
    reach: int = 0,
    vulnerable: bool = False,
    legal_deadline: datetime | None = None,
) -> appeal_pb2.SubmissionFacts:
    built = appeal_pb2.SubmissionFacts(
        platform=platform,  # type: ignore[arg-type]
        subject=appeal_pb2.Subject(kind=kind, id="1"),  # type: ignore[arg-type]
        decision=appeal_pb2.OriginalDecision(
            policy=policy_name, action=action, automated=automated
        ),
        locale=locale,
        country=country,
        signals=appeal_pb2.RoutingSignals(account_reach=reach, vulnerable_user=vulnerable),
    )
    if legal_deadline is not None:
        built.signals.legal_deadline.FromDatetime(legal_deadline)
    return built


def route(
    rules: RoutingPolicy,
    appeal: appeal_pb2.SubmissionFacts,
    *,
    ban_evasion: bool = False,
    repeat: bool = False,
) -> policy.RoutingDecision:
    return policy.route(
        rules,
        policy.AppealFacts(
            appeal, RECEIVED, ban_evasion_suspected=ban_evasion, repeat_appeal=repeat
        ),
    )


def test_the_default_queue_names_platform_policy_area_and_language(shipped: RoutingPolicy) -> None:
    decision = route(shipped, submission())
    assert (decision.rule, decision.queue) == ("default", "instagram.hate_and_harassment.de")
    assert dict(decision.placement.requirements.skills) == {
        "platform": "instagram",
        "policy_area": "hate_and_harassment",
        "language": "de",
    }


def test_unstaffed_languages_and_unknown_policies_fall_back(shipped: RoutingPolicy) -> None:
    decision = route(shipped, submission(locale="sw-KE", policy_name="something_new"))
    assert decision.queue == "instagram.general.en"


def test_rules_are_ordered_and_the_first_match_wins(shipped: RoutingPolicy) -> None:
    # Both child safety and vulnerable-user rules hold; child safety comes first.
    both = route(shipped, submission(policy_name="child_safety", vulnerable=True))
    assert (both.rule, both.queue) == (
        "child_safety_specialists",
        "instagram.specialist.child_safety.de",
    )
    assert both.placement.requirements.min_seniority == "experienced"
    vulnerable = route(shipped, submission(vulnerable=True))
    assert (vulnerable.rule, vulnerable.queue) == (
        "vulnerable_person",
        "instagram.vulnerable_people.de",
    )


def test_ban_evasion_goes_to_integrity_review_and_waits_behind_genuine_appeals(
    shipped: RoutingPolicy,
) -> None:
    flagged = route(shipped, submission(), ban_evasion=True)
    plain = route(shipped, submission())
    assert flagged.rule == "ban_evasion_suspected"
    assert flagged.queue == "instagram.integrity_review.de"
    assert flagged.priority == plain.priority - 10
    assert "-10 ban evasion suspected" in flagged.reasons


def test_high_reach_accounts_get_their_queue_and_a_second_blind_review(
    shipped: RoutingPolicy,
) -> None:
    decision = route(
        shipped,
        submission(kind=appeal_pb2.SUBJECT_KIND_ACCOUNT, action="disabled", reach=2_000_000),
    )
    assert (decision.rule, decision.queue) == ("high_reach_account", "instagram.high_reach.de")
    assert decision.second_review
    # The global threshold asks for a second review even where no rule does (a post).
    post = route(shipped, submission(reach=5_000_000))
    assert post.rule == "default" and post.second_review
    assert not route(shipped, submission(reach=10)).second_review


def test_every_signal_adds_its_points_with_a_reason(shipped: RoutingPolicy) -> None:
    deadline = RECEIVED + timedelta(hours=30)
    decision = route(
        shipped,
        submission(
            kind=appeal_pb2.SUBJECT_KIND_PAGE,
            action="disabled",
            automated=True,
            reach=20_000,
            legal_deadline=deadline,
        ),
        repeat=True,
    )
    assert decision.reasons == (
        "+10 base",
        "+30 severity account_level (disabled)",
        "+20 page: wide reach",
        "+5 account reach 20,000",
        f"+30 legal deadline {deadline.isoformat()}",
        "+5 repeat appeal of the same decision",
        "+10 original decision was automated",
        "capped at 100",
    )
    assert decision.priority == 100
    assert decision.severity == "account_level"


def test_sla_targets_depend_on_jurisdiction_and_priority(shipped: RoutingPolicy) -> None:
    urgent = submission(kind=appeal_pb2.SUBJECT_KIND_ACCOUNT, action="disabled", automated=True)
    assert route(shipped, urgent).sla_due_at == RECEIVED + timedelta(hours=24)  # no country
    urgent.country = "DE"
    assert route(shipped, urgent).sla_due_at == RECEIVED + timedelta(hours=12)
    urgent.country = "FR"  # in the EU group
    assert route(shipped, urgent).sla_due_at == RECEIVED + timedelta(hours=24)
    low = route(shipped, submission(country="US"))
    assert low.priority < 35
    assert low.sla_due_at == RECEIVED + timedelta(days=7)
    assert low.sla.warn_at == RECEIVED + timedelta(days=7) * 0.8
    assert low.sla.reasons == ("7d for priority >= 0 in elsewhere",)


def test_a_legal_deadline_caps_the_due_time(shipped: RoutingPolicy) -> None:
    deadline = RECEIVED + timedelta(hours=10)
    decision = route(shipped, submission(legal_deadline=deadline))
    assert decision.rule == "legal_deadline"
    assert decision.sla_due_at == deadline - timedelta(hours=2)  # the policy's margin
    assert any("capped by the legal deadline" in reason for reason in decision.sla.reasons)


def test_a_queue_name_resolves_to_its_placement_and_skills(shipped: RoutingPolicy) -> None:
    values = policy.attributes(shipped, submission(country="DE"))
    placement = policy.resolve_queue(shipped, "facebook.violence_and_safety.fr", values)
    assert placement is not None
    assert placement.queue_id == "standard"
    assert dict(placement.requirements.skills) == {
        "platform": "facebook",
        "policy_area": "violence_and_safety",
        "language": "fr",
    }
    senior = policy.resolve_queue(shipped, "senior.de", values)
    assert senior is not None and senior.requirements.min_seniority == "senior"
    assert policy.resolve_queue(shipped, "legal.EU", values) is not None
    assert policy.resolve_queue(shipped, "instagram.nonsense_area.de", values) is None
    assert policy.resolve_queue(shipped, "no.such.queue.at.all", values) is None


def test_skill_requirements_relax_step_by_step_but_never_below_mandatory(
    shipped: RoutingPolicy,
) -> None:
    requirements = route(shipped, submission()).placement.requirements
    german_generalist = policy.AgentSkills(
        languages=frozenset({"de"}), platforms=frozenset({"facebook"}), seniority="junior"
    )
    english_everything = policy.AgentSkills(
        languages=frozenset({"en"}),
        platforms=frozenset({"*"}),
        policy_areas=frozenset({"*"}),
        seniority="senior",
    )

    def qualifies(agent: policy.AgentSkills, waited: timedelta) -> bool:
        effective = policy.effective_requirements(shipped, requirements, waited)
        return policy.qualifies(shipped, agent, effective)

    assert not qualifies(german_generalist, timedelta(minutes=29))
    assert not qualifies(german_generalist, timedelta(minutes=31))  # area relaxed, platform not
    assert qualifies(german_generalist, timedelta(hours=2))
    for waited in (timedelta(0), timedelta(hours=3), timedelta(days=30)):
        assert not qualifies(english_everything, waited)  # language is mandatory
    assert policy.relaxation_schedule(shipped, requirements) == [
        (timedelta(minutes=30), ["policy_area"]),
        (timedelta(hours=2), ["platform"]),
    ]


def test_seniority_counts_by_level(shipped: RoutingPolicy) -> None:
    requirements = policy.place(
        shipped, "senior", policy.attributes(shipped, submission())
    ).requirements
    levels = {
        level: policy.AgentSkills(languages=frozenset({"de"}), seniority=level)
        for level in ("junior", "experienced", "senior")
    }
    assert [policy.qualifies(shipped, skills, requirements) for skills in levels.values()] == [
        False,
        False,
        True,
    ]
    assert policy.qualifies(shipped, policy.AgentSkills.everything(), requirements)


def test_equal_placements_are_one_instance_whether_routed_or_read_back(
    shipped: RoutingPolicy,
) -> None:
    """Every open case in routing's memory holds its placement: equal ones are shared, not
    copied (the board holds every open case)."""
    first, second = route(shipped, submission()), route(shipped, submission())
    assert first.placement is second.placement
    stored = documents._placement_document(first.placement)
    assert documents._placement(stored) is first.placement
    other = route(shipped, submission(locale="fr-FR"))
    assert other.placement is not first.placement and other.placement != first.placement
