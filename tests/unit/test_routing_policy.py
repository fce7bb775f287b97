"""Routing policy: queues, priorities and SLA due times (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from appeals.v1 import appeal_pb2
from services.routing import policy

RECEIVED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def submission(
    *,
    platform: int = appeal_pb2.PLATFORM_INSTAGRAM,
    kind: int = appeal_pb2.SUBJECT_KIND_POST,
    policy_name: str = "hate_speech",
    action: str = "removed",
    automated: bool = False,
    locale: str = "de-DE",
) -> appeal_pb2.AppealSubmission:
    return appeal_pb2.AppealSubmission(
        platform=platform,  # type: ignore[arg-type]
        subject=appeal_pb2.Subject(kind=kind, id="1"),  # type: ignore[arg-type]
        decision=appeal_pb2.OriginalDecision(
            policy=policy_name, action=action, automated=automated
        ),
        locale=locale,
    )


def test_queue_names_platform_policy_area_and_language() -> None:
    decision = policy.route(submission(), received_at=RECEIVED)
    assert decision.queue == "instagram.hate_and_harassment.de"


def test_unstaffed_languages_and_unknown_policies_fall_back() -> None:
    decision = policy.route(
        submission(locale="sw-KE", policy_name="something_new"), received_at=RECEIVED
    )
    assert decision.queue == "instagram.general.en"


def test_a_disabled_account_outranks_a_removed_post_and_is_due_sooner() -> None:
    account = policy.route(
        submission(kind=appeal_pb2.SUBJECT_KIND_ACCOUNT, action="disabled", automated=True),
        received_at=RECEIVED,
    )
    post = policy.route(submission(), received_at=RECEIVED)
    assert account.priority > post.priority
    assert account.sla_due_at == RECEIVED + timedelta(hours=24)
    assert post.sla_due_at == RECEIVED + timedelta(days=7)
    assert any("automated" in reason for reason in account.reasons)


def test_priority_is_capped() -> None:
    decision = policy.route(
        submission(
            kind=appeal_pb2.SUBJECT_KIND_ACCOUNT,
            action="banned",
            automated=True,
            policy_name="child_safety",
        ),
        received_at=RECEIVED,
    )
    assert decision.priority <= 100
