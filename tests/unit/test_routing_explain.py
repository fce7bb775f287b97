"""What the routing policy does with one appeal (routing's explanation, as `appeals route
--explain` prints it): the matched rule, the score with its reasons, the due time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from google.protobuf import json_format

from appeals.v1 import appeal_pb2
from appeals_cli.route import NotAnAppealError, render, submission_facts
from services.routing.explain import explain
from services.routing.policy import AppealFacts
from services.routing.policy_file import DEFAULT_POLICY_FILE, PolicyError, load_policy, parse_policy

BODY: dict[str, Any] = {
    "platform": "instagram",
    "appellant": {"user_id": "17841400000000001"},
    "subject": {"kind": "account", "id": "3141592653589793"},
    "decision": {
        "id": "dec-1",
        "policy": "fake_account",
        "action": "disabled",
        "automated": True,
        "decided_at": "2026-11-20T10:00:00Z",
        "decided_by": "classifier:fake-account-v2",
    },
    "statement": "This is my real account.",
    "locale": "de-DE",
    "country": "DE",
    "signals": {"account_reach": 2500000},
}
RECEIVED = datetime.fromisoformat("2026-11-25T09:00:00+00:00")


def explained(body: dict[str, Any], **facts: bool) -> dict[str, Any]:
    submission = json_format.ParseDict(submission_facts(body), appeal_pb2.SubmissionFacts())
    return explain(load_policy(DEFAULT_POLICY_FILE), AppealFacts(submission, RECEIVED, **facts))


def test_explain_prints_the_rule_the_score_with_reasons_and_the_due_time() -> None:
    out = render(explained(BODY))
    assert "rule           high_reach_account (rule 5 of 5 matched first)" in out
    assert "queue          instagram.high_reach.de" in out
    assert "priority       85" in out
    assert "+15 account reach 2,500,000" in out
    assert "due            2026-11-25T21:00:00+00:00 (12h for priority >= 60 in DE)" in out
    assert "relaxes        after 2h: platform; after 6h: seniority" in out
    assert "second review  required" in out


def test_explain_with_signals_intake_adds() -> None:
    found = explained(BODY, ban_evasion_suspected=True)
    assert (found["rule"], found["queue"]) == (
        "ban_evasion_suspected",
        "instagram.integrity_review.de",
    )
    assert "-10 ban evasion suspected" in found["priority_reasons"]


def test_only_the_facts_leave_the_command_never_the_person() -> None:
    facts = submission_facts(BODY)
    assert "17841400000000001" not in str(facts)
    assert "real account" not in str(facts)


def test_what_is_wrong_with_the_body_or_the_policy_is_named() -> None:
    with pytest.raises(NotAnAppealError, match="platform: must be one of"):
        submission_facts({**BODY, "platform": "myspace"})
    with pytest.raises(PolicyError, match="queues: Field required"):
        parse_policy("version: 1\n", source="policy")
