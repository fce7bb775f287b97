"""The eligibility rules file and how it is applied (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from appeals.v1 import appeal_pb2
from services.intake import eligibility

RULES = eligibility.load_rules()
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def submission(
    *,
    country: str = "DE",
    decided_days_ago: int = 10,
    notified_days_ago: int | None = None,
    action: str = "removed",
    role: int = appeal_pb2.APPELLANT_ROLE_AFFECTED_USER,
    non_appealable: str = "",
) -> appeal_pb2.AppealSubmission:
    result = appeal_pb2.AppealSubmission(
        country=country,
        appellant=appeal_pb2.Appellant(user_id="1", role=role),  # type: ignore[arg-type]
        decision=appeal_pb2.OriginalDecision(action=action, non_appealable_reason=non_appealable),
    )
    result.decision.decided_at.FromDatetime(NOW - timedelta(days=decided_days_ago))
    if notified_days_ago is not None:
        result.decision.notified_at.FromDatetime(NOW - timedelta(days=notified_days_ago))
    return result


def code(s: appeal_pb2.AppealSubmission) -> str | None:
    refusal = eligibility.check(s, RULES, now=NOW)
    return refusal.code if refusal else None


def test_every_eu_country_gets_at_least_six_months() -> None:
    eu = RULES.appeal_windows.jurisdictions["EU"]
    assert len(eu.countries) == 27
    for country in eu.countries:
        assert RULES.window(country)[1] >= timedelta(days=183)
    assert RULES.window("NO")[0] == "EEA"  # a bare NO in YAML would have been false


def test_the_window_runs_from_when_the_person_was_told() -> None:
    assert code(submission(decided_days_ago=182)) is None
    assert code(submission(decided_days_ago=184)) == "appeal_window_closed"
    # decided long ago but only told last week: still open
    assert code(submission(decided_days_ago=400, notified_days_ago=7)) is None


def test_other_jurisdictions_use_their_configured_windows() -> None:
    assert code(submission(country="US", decided_days_ago=91)) == "appeal_window_closed"
    assert code(submission(country="US", decided_days_ago=89)) is None
    assert code(submission(country="BR", decided_days_ago=179)) is None  # default 180
    assert code(submission(country="BR", decided_days_ago=181)) == "appeal_window_closed"


def test_non_appealable_decisions_are_refused_with_their_reason() -> None:
    refusal = eligibility.check(submission(non_appealable="court_order"), RULES, now=NOW)
    assert refusal is not None and refusal.code == "not_appealable"
    assert "court" in refusal.detail
    unknown = eligibility.check(submission(non_appealable="other"), RULES, now=NOW)
    assert unknown is not None and unknown.detail == RULES.non_appealable_reasons["generic"]


def test_reporters_may_appeal_a_decision_not_to_act_and_only_that() -> None:
    reporter = appeal_pb2.APPELLANT_ROLE_REPORTER
    assert code(submission(role=reporter, action="no_action")) is None
    assert code(submission(role=reporter, action="removed")) == "reporter_needs_no_action"
    assert code(submission(action="no_action")) == "nothing_to_restore"


def test_a_rules_file_below_the_legal_minimum_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load(eligibility.DEFAULT_RULES_FILE.read_text())
    raw["appeal_windows"]["jurisdictions"]["EU"]["days"] = 90
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError, match="legal minimum"):
        eligibility.load_rules(path)


def test_a_country_in_two_jurisdictions_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load(eligibility.DEFAULT_RULES_FILE.read_text())
    raw["appeal_windows"]["jurisdictions"]["US"]["countries"].append("DE")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError, match="DE is in both"):
        eligibility.load_rules(path)
