"""Statements of reasons for a fixture set, compared field by field with hand-written ones."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appeals.v1 import appeal_pb2, events_pb2
from appeals_runtime.privacy import submission_facts
from services.audit import transparency
from services.audit.transparency import EEA, DecidedAppeal
from tests.unit.test_audit_privacy import old_layout

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
        "category": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
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
        "category": "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE",
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
