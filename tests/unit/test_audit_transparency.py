"""Statements of reasons for a fixture set, compared field by field with hand-written ones."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2, events_pb2
from services.audit.exports import dsa_rules, transparency
from services.audit.exports.transparency import EEA, DecidedAppeal
from tests.support.audit import old_layout

SUBMITTED_AT = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)


def appeal(
    appeal_id: str,
    *,
    platform: int,
    kind: int,
    policy: str,
    action: str,
    automated: bool,
    locale: str,
    country: str,
    outcome: int,
    rationale: str,
    policy_cited: str = "",
    facts: str = "",
    role: int = appeal_pb2.APPELLANT_ROLE_AFFECTED_USER,
    decided_at: datetime = datetime(2025, 3, 5, 16, 30, tzinfo=UTC),
    by_assistant: bool = False,
) -> DecidedAppeal:
    submission = appeal_pb2.AppealSubmission(
        platform=platform,  # type: ignore[arg-type]
        appellant=appeal_pb2.Appellant(role=role),  # type: ignore[arg-type]
        subject=appeal_pb2.Subject(kind=kind, id="s-1"),  # type: ignore[arg-type]
        decision=appeal_pb2.OriginalDecision(policy=policy, action=action, automated=automated),
        locale=locale,
        country=country,
    )
    submission.decision.decided_at.FromDatetime(datetime(2025, 3, 1, 23, 59, tzinfo=UTC))
    return DecidedAppeal(
        appeal_id=appeal_id,
        submitted=events_pb2.AppealSubmitted(facts=submission_facts(submission)),
        submitted_at=SUBMITTED_AT,
        decided=events_pb2.AppealDecided(
            outcome=outcome,  # type: ignore[arg-type]
            rationale=rationale,
            policy_cited=policy_cited,
            facts=facts,
            platform=platform,  # type: ignore[arg-type]
            by_assistant=by_assistant,
        ),
        decided_at=decided_at,
    )


OVERTURNED_POST = appeal(
    "ap_post",
    platform=appeal_pb2.PLATFORM_INSTAGRAM,
    kind=appeal_pb2.SUBJECT_KIND_POST,
    policy="hate_speech",
    action="removed",
    automated=True,
    locale="de-DE",
    country="DE",
    outcome=appeal_pb2.OUTCOME_OVERTURNED,
    rationale="A quotation in news reporting, not an attack on a protected group.",
    policy_cited="hate_speech.newsworthy_quotation",
    facts="The post quoted a politician's speech and condemned it.",
)
UPHELD_ACCOUNT = appeal(
    "ap_account",
    platform=appeal_pb2.PLATFORM_FACEBOOK,
    kind=appeal_pb2.SUBJECT_KIND_ACCOUNT,
    policy="fake_account",
    action="disabled",
    automated=True,
    locale="en-US",
    country="US",
    outcome=appeal_pb2.OUTCOME_UPHELD,
    rationale="The account impersonates a public figure.",
)
PARTLY_REVERSED_AVATAR = appeal(
    "ap_avatar",
    platform=appeal_pb2.PLATFORM_HORIZON,
    kind=appeal_pb2.SUBJECT_KIND_AVATAR,
    policy="harassment",
    action="restricted",
    automated=False,
    locale="en-GB",
    country="GB",
    outcome=appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED,
    rationale="The gesture was harassment; the restriction was too long.",
    policy_cited="harassment.gestures",
)
UPHELD_UNLAWFUL_MESSAGE = appeal(
    "ap_message",
    platform=appeal_pb2.PLATFORM_WHATSAPP,
    kind=appeal_pb2.SUBJECT_KIND_MESSAGE,
    policy="law:DE-StGB-130",
    action="removed",
    automated=False,
    locale="de-DE",
    country="DE",
    outcome=appeal_pb2.OUTCOME_UPHELD,
    rationale="Incitement to hatred under German criminal law.",
    role=appeal_pb2.APPELLANT_ROLE_REPORTER,
)

EXPECTED: dict[str, dict[str, Any]] = {
    "ap_post": {
        "decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
        "decision_monetary": None,
        "decision_provision": None,
        "decision_account": None,
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "incompatible_content_ground": "hate_speech.newsworthy_quotation",
        "incompatible_content_explanation": (
            "A quotation in news reporting, not an attack on a protected group."
        ),
        "category": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
        "category_specification": ["KEYWORD_HATE_SPEECH"],
        "content_type": ["CONTENT_TYPE_TEXT"],
        "automated_detection": "Yes",
        "automated_decision": "AUTOMATED_DECISION_PARTIALLY",
        "source_type": "SOURCE_VOLUNTARY",
        "content_date": "2025-03-01",
        "application_date": "2025-03-01",
        "end_date_visibility_restriction": "2025-03-05",
        "puid": "ap_post",
        "territorial_scope": list(EEA),
        "content_language": "DE",
        "decision_facts": "The post quoted a politician's speech and condemned it.",
    },
    "ap_account": {
        "decision_visibility": [],
        "decision_monetary": None,
        "decision_provision": None,
        "decision_account": "DECISION_ACCOUNT_SUSPENDED",
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "incompatible_content_ground": "fake_account",
        "incompatible_content_explanation": "The account impersonates a public figure.",
        "category": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
        "category_specification": ["KEYWORD_INAUTHENTIC_ACCOUNTS"],
        "content_type": ["CONTENT_TYPE_OTHER"],
        "content_type_other": "account",
        "automated_detection": "Yes",
        "automated_decision": "AUTOMATED_DECISION_PARTIALLY",
        "source_type": "SOURCE_VOLUNTARY",
        "content_date": "2025-03-01",
        "application_date": "2025-03-01",
        "puid": "ap_account",
        "territorial_scope": list(EEA),
        "content_language": "EN",
        "decision_facts": (
            "The account was disabled under the fake_account policy, detected by automated "
            "means. On appeal, a person reviewed the decision and upheld it on 2025-03-05."
        ),
    },
    "ap_avatar": {
        "decision_visibility": [],
        "decision_monetary": None,
        "decision_provision": "DECISION_PROVISION_PARTIAL_SUSPENSION",
        "decision_account": None,
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "incompatible_content_ground": "harassment.gestures",
        "incompatible_content_explanation": (
            "The gesture was harassment; the restriction was too long."
        ),
        "category": "STATEMENT_CATEGORY_CYBER_VIOLENCE",
        "category_specification": ["KEYWORD_CYBER_HARASSMENT"],
        "content_type": ["CONTENT_TYPE_OTHER"],
        "content_type_other": "avatar",
        "automated_detection": "No",
        "automated_decision": "AUTOMATED_DECISION_NOT_AUTOMATED",
        "source_type": "SOURCE_VOLUNTARY",
        "content_date": "2025-03-01",
        "application_date": "2025-03-01",
        "puid": "ap_avatar",
        "territorial_scope": list(EEA),
        "content_language": "EN",
        "decision_facts": (
            "The avatar was restricted under the harassment policy. On appeal, a person "
            "reviewed the decision and partly reversed it on 2025-03-05."
        ),
    },
    "ap_message": {
        "decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
        "decision_monetary": None,
        "decision_provision": None,
        "decision_account": None,
        "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT",
        "illegal_content_legal_ground": "DE-StGB-130",
        "illegal_content_explanation": "Incitement to hatred under German criminal law.",
        # A law whose kind of illegal content the policy does not name.
        "category": "STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE",
        "content_type": ["CONTENT_TYPE_TEXT"],
        "automated_detection": "No",
        "automated_decision": "AUTOMATED_DECISION_NOT_AUTOMATED",
        "source_type": "SOURCE_ARTICLE_16",
        "content_date": "2025-03-01",
        "application_date": "2025-03-01",
        "puid": "ap_message",
        "territorial_scope": ["DE"],
        "content_language": "DE",
        "decision_facts": (
            "The message was removed under the law:DE-StGB-130 policy. On appeal, a person "
            "reviewed the decision and upheld it on 2025-03-05."
        ),
    },
}


@pytest.mark.parametrize(
    "fixture", [OVERTURNED_POST, UPHELD_ACCOUNT, PARTLY_REVERSED_AVATAR, UPHELD_UNLAWFUL_MESSAGE]
)
def test_each_statement_matches_the_hand_written_one_field_by_field(fixture: DecidedAppeal) -> None:
    statement = transparency.statement_of_reasons(fixture)
    expected = EXPECTED[fixture.appeal_id]

    assert sorted(statement) == sorted(expected)
    for field, value in expected.items():
        assert statement[field] == value, field


def test_the_eea_is_the_27_member_states_and_iceland_liechtenstein_norway() -> None:
    assert len(EEA) == 30
    assert {"IS", "LI", "NO", "DE", "FR", "GR"} <= set(EEA)
    assert "GB" not in EEA
    assert "CH" not in EEA


def test_statements_are_batched_per_platform_at_most_100_each() -> None:
    many = [
        appeal(
            f"ap_{n:03d}",
            platform=appeal_pb2.PLATFORM_INSTAGRAM,
            kind=appeal_pb2.SUBJECT_KIND_REEL,
            policy="spam",
            action="removed",
            automated=True,
            locale="fr-FR",
            country="FR",
            outcome=appeal_pb2.OUTCOME_UPHELD,
            rationale="Repeated commercial spam.",
            decided_at=SUBMITTED_AT + timedelta(minutes=n),
        )
        for n in range(250)
    ]

    batches = list(transparency.batches([*many, UPHELD_ACCOUNT]))

    assert [(b["platform"], len(b["statements"])) for b in batches] == [
        ("facebook", 1),
        ("instagram", 100),
        ("instagram", 100),
        ("instagram", 50),
    ]
    puids = [s["puid"] for b in batches[1:] for s in b["statements"]]
    assert puids == [f"ap_{n:03d}" for n in range(250)]  # decision order, none lost or doubled
    assert batches[1]["statements"][0]["content_type"] == ["CONTENT_TYPE_VIDEO"]


def test_an_unknown_action_is_visibility_other_naming_the_action() -> None:
    odd = appeal(
        "ap_odd",
        platform=appeal_pb2.PLATFORM_FACEBOOK,
        kind=appeal_pb2.SUBJECT_KIND_COMMENT,
        policy="spam",
        action="Shadow_Limited",
        automated=True,
        locale="",
        country="",
        outcome=appeal_pb2.OUTCOME_UPHELD,
        rationale="",
    )
    statement = transparency.statement_of_reasons(odd)
    assert statement["decision_visibility"] == ["DECISION_VISIBILITY_OTHER"]
    assert statement["decision_visibility_other"] == "shadow_limited"
    assert statement["content_language"] is None
    assert statement["incompatible_content_explanation"] == (
        "The content was found to breach the spam policy."
    )


@pytest.mark.parametrize(
    ("automated", "by_assistant", "expected"),
    [
        (True, True, "AUTOMATED_DECISION_FULLY"),
        (False, True, "AUTOMATED_DECISION_FULLY"),
        (True, False, "AUTOMATED_DECISION_PARTIALLY"),
        (False, False, "AUTOMATED_DECISION_NOT_AUTOMATED"),
    ],
)
def test_only_a_person_s_decision_counts_as_human_review(
    automated: bool, by_assistant: bool, expected: str
) -> None:
    decided = appeal(
        "ap_who", platform=appeal_pb2.PLATFORM_INSTAGRAM, kind=appeal_pb2.SUBJECT_KIND_POST,
        policy="spam", action="removed", automated=automated, locale="en-US", country="DE",
        outcome=appeal_pb2.OUTCOME_UPHELD, rationale="Spam.", by_assistant=by_assistant,
    )  # fmt: skip
    statement = transparency.statement_of_reasons(decided)
    assert statement["automated_decision"] == expected
    reviewer = "an automated assistant" if by_assistant else "a person"
    assert f"On appeal, {reviewer} reviewed the decision" in statement["decision_facts"]


def test_an_entry_logged_in_the_old_layout_gives_the_same_statement() -> None:
    # Entries logged before events lost their personal data hold the (redacted) submission as
    # field 1; its field numbers are the facts' own, so the facts' bytes stand in for it here.
    facts = OVERTURNED_POST.submitted.facts
    submission = appeal_pb2.AppealSubmission.FromString(facts.SerializeToString())
    submitted = old_layout(events_pb2.AppealSubmitted(), submission)
    logged_before = dataclasses.replace(OVERTURNED_POST, submitted=submitted)
    assert not submitted.HasField("facts")
    assert transparency.statement_of_reasons(logged_before) == transparency.statement_of_reasons(
        OVERTURNED_POST
    )


def test_the_contents_own_date_is_the_content_date_when_the_surface_sent_it() -> None:
    submitted = events_pb2.AppealSubmitted()
    submitted.CopyFrom(OVERTURNED_POST.submitted)
    submitted.facts.subject.content_date = "2024-11-30"
    dated = dataclasses.replace(OVERTURNED_POST, submitted=submitted)
    assert transparency.statement_of_reasons(dated)["content_date"] == "2024-11-30"
    # Without it, the original decision's date stands in.
    assert transparency.statement_of_reasons(OVERTURNED_POST)["content_date"] == "2025-03-01"


def every_kind_of_decided_appeal() -> list[DecidedAppeal]:
    """Every policy area the export knows (and one it does not, and a law), on every kind of
    subject, with every outcome and action the export maps, decided by a person or an
    assistant, on a user's appeal or a reporter's."""
    areas = [*transparency.CATEGORIES, "unheard_of_area", "law:DE-StGB-130"]
    kinds = list(appeal_pb2.SubjectKind.values())[1:]
    outcomes = [appeal_pb2.OUTCOME_UPHELD, appeal_pb2.OUTCOME_OVERTURNED,
                appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED]  # fmt: skip
    actions = ["removed", "disabled", "banned", "restricted", "demonetized", "shadowed", ""]
    built = []
    for n, area in enumerate(areas):
        for k, kind in enumerate(kinds):
            built.append(
                appeal(
                    f"ap_{n}_{k}", platform=appeal_pb2.PLATFORM_FACEBOOK, kind=kind, policy=area,
                    action=actions[(n + k) % len(actions)], automated=bool(k % 2),
                    locale=["de-DE", "fil-PH", "en"][k % 3], country=["DE", "US", "GR"][n % 3],
                    outcome=outcomes[(n + k) % 3], rationale="Why, in the reviewer's words " * 90,
                    facts="Account s-1 posted it twice." if k % 2 else "",
                    role=[appeal_pb2.APPELLANT_ROLE_AFFECTED_USER,
                          appeal_pb2.APPELLANT_ROLE_REPORTER][n % 2],
                    by_assistant=n % 3 == 0,
                )
            )  # fmt: skip
    return built


def test_every_statement_passes_the_transparency_databases_current_rules() -> None:
    for decided in every_kind_of_decided_appeal():
        statement = transparency.statement_of_reasons(decided)
        assert dsa_rules.violations(statement) == [], (decided.appeal_id, statement)
        # No personal data: the actioned item's id (for an account, the person's) is not quoted.
        assert "s-1" not in statement["decision_facts"]


def test_the_rules_refuse_what_the_database_refuses() -> None:
    good = transparency.statement_of_reasons(OVERTURNED_POST)
    assert dsa_rules.violations(good) == []
    removed = good | {"category": "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE"}
    (problem,) = dsa_rules.violations(removed)
    assert "STATEMENT_CATEGORY_OTHER_VIOLATION_TC" in problem
    assert dsa_rules.violations(good | {"category_specification": ["KEYWORD_MISINFORMATION"]})
    assert dsa_rules.violations(good | {"content_date": "1999-12-31"})
    assert dsa_rules.violations(good | {"incompatible_content_explanation": "x" * 2001})
    assert dsa_rules.violations(good | {"puid": "ap post"})
    assert dsa_rules.violations({k: v for k, v in good.items() if k != "decision_facts"})
    no_restriction = good | {"decision_visibility": [], "decision_account": None}
    assert dsa_rules.violations(no_restriction)
