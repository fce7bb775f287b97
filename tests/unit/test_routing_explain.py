"""`appeals route --explain FILE`: the matched rule, the score with its reasons, the due time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appeals_cli.main import main

BODY = {
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


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    path = tmp_path / "appeal.json"
    path.write_text(json.dumps(BODY))
    code = main(["route", "--explain", str(path), "--received-at", "2026-11-25T09:00:00Z", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_prints_the_rule_the_score_with_reasons_and_the_due_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(tmp_path, capsys)
    assert code == 0
    assert "rule           high_reach_account (rule 5 of 5 matched first)" in out
    assert "queue          instagram.high_reach.de" in out
    assert "priority       85" in out
    assert "+15 account reach 2,500,000" in out
    assert "due            2026-11-25T21:00:00+00:00 (12h for priority >= 60 in DE)" in out
    assert "relaxes        after 2h: platform; after 6h: seniority" in out
    assert "second review  required" in out


def test_explain_as_json_and_with_signals_intake_adds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(tmp_path, capsys, "--json", "--ban-evasion")
    explained = json.loads(out)
    assert code == 0
    assert (explained["rule"], explained["queue"]) == (
        "ban_evasion_suspected",
        "instagram.integrity_review.de",
    )
    assert "-10 ban evasion suspected" in explained["priority_reasons"]


def test_explain_names_what_is_wrong_with_the_body_or_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**BODY, "platform": "myspace"}))
    assert main(["route", "--explain", str(bad)]) == 2
    assert "platform: Input should be" in capsys.readouterr().err
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n")
    code, _, err = run(tmp_path, capsys, "--policy", str(policy))
    assert code == 2 and "queues: Field required" in err
