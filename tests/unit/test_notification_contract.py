"""Lifecycle events against the notifications contract, and start-up that fails fast. No I/O."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack import devkeys
from appeals_runtime import events
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.settings import SettingsError, load_settings
from services.notifications.config import NotificationsSettings
from services.notifications.inbound import decision_from_decided, recipient_from_submitted
from services.notifications.model import Delivery
from services.notifications.notifier import notified_event

REPO_ROOT = Path(__file__).resolve().parents[2]


def submitted(appeal_id: str = "ap_1", **submission: object) -> events_pb2.AppealEvent:
    fields: dict[str, object] = {
        "platform": appeal_pb2.PLATFORM_INSTAGRAM,
        "appellant": appeal_pb2.Appellant(user_id="ig-7"),
        "subject": appeal_pb2.Subject(kind=appeal_pb2.SUBJECT_KIND_REEL, id="reel-1"),
        "decision": appeal_pb2.OriginalDecision(policy="nudity", action="removed"),
        "locale": "de-AT",
        "country": "AT",
        **submission,
    }
    return events.new_event(
        event_id="ev-s",
        appeal_id=appeal_id,
        producer="tests",
        submitted=events_pb2.AppealSubmitted(
            submission=appeal_pb2.AppealSubmission(**fields),  # type: ignore[arg-type]
        ),
    )


def decided(
    outcome: appeal_pb2.Outcome.ValueType = appeal_pb2.OUTCOME_UPHELD,
) -> events_pb2.AppealEvent:
    return events.new_event(
        event_id="ev-d",
        appeal_id="ap_1",
        producer="tests",
        decided=events_pb2.AppealDecided(
            agent_id="agent-1", outcome=outcome, rationale="Because.", policy_cited="nudity"
        ),
    )


def test_a_submitted_event_gives_the_recipient_profile() -> None:
    person = recipient_from_submitted(submitted())
    assert (person.appeal_id, person.submitted_event_id) == ("ap_1", "ev-s")
    assert (person.platform, person.user_id, person.locale, person.country) == (
        "instagram",
        "ig-7",
        "de-AT",
        "AT",
    )
    assert (person.subject_kind, person.subject_id) == ("reel", "reel-1")
    assert (person.decision_policy, person.decision_action) == ("nudity", "removed")


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (submitted(appeal_id=""), "appeal_id"),
        (submitted(platform=appeal_pb2.PLATFORM_UNSPECIFIED), "submitted.submission.platform"),
        (submitted(appellant=appeal_pb2.Appellant()), "submitted.submission.appellant.user_id"),
    ],
)
def test_a_submitted_event_that_breaks_the_contract_is_invalid(
    event: events_pb2.AppealEvent, field: str
) -> None:
    with pytest.raises(InvalidMessage) as raised:
        recipient_from_submitted(event)
    assert raised.value.field == field


def test_a_decided_event_gives_the_decision_and_an_unknown_outcome_is_invalid() -> None:
    decision = decision_from_decided(decided(appeal_pb2.OUTCOME_OVERTURNED))
    assert (decision.outcome, decision.policy_cited, decision.event_id) == (
        "overturned",
        "nudity",
        "ev-d",
    )
    for outcome in (appeal_pb2.OUTCOME_UNSPECIFIED, appeal_pb2.Outcome.ValueType(99)):
        with pytest.raises(InvalidMessage) as raised:
            decision_from_decided(decided(outcome))
        assert raised.value.field == "decided.outcome"


def test_an_event_without_an_occurrence_time_is_invalid() -> None:
    event = decided()
    event.ClearField("occurred_at")
    with pytest.raises(InvalidMessage) as raised:
        decision_from_decided(event)
    assert raised.value.field == "occurred_at"


def test_the_notified_event_is_derived_from_what_it_is_about() -> None:
    delivery = Delivery(
        appeal_id="ap_1",
        about_event_id="ev-d",
        kind="decided",
        template="decided_upheld",
        channel="instagram_dm",
        platform="instagram",
        locale="de",
        recipient="ig-7",
        subject="s",
        body="b",
        payload={},
        delivered_at=events.occurred_at(decided()),
    )
    first, again = notified_event(delivery), notified_event(delivery)
    assert first == again
    assert first.event_id == events.derived_event_id("ap_1", "notified", "ev-d")
    assert (first.causation_id, first.producer, first.schema) == (
        "ev-d",
        "notifications",
        "appeals.v1.AppellantNotified",
    )
    assert (first.notified.kind, first.notified.channel, first.notified.locale) == (
        "decided",
        "instagram_dm",
        "de",
    )


def test_settings_need_a_jwks_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("AUTH_JWKS_FILE", raising=False)
    with pytest.raises(SettingsError):
        load_settings(NotificationsSettings)
    assert "AUTH_JWKS_FILE" in capsys.readouterr().err

    _, jwks = devkeys.ensure(tmp_path)
    monkeypatch.setenv("AUTH_JWKS_FILE", str(jwks))
    monkeypatch.setenv("NOTIFICATIONS_HTTP_PORT", "18082")
    settings = load_settings(NotificationsSettings)
    assert settings.http_port == 18082
    TokenVerifier.from_settings(settings)

    jwks.write_text("not json")
    with pytest.raises(SettingsError):
        TokenVerifier.from_settings(settings)
    assert "AUTH_JWKS_FILE" in capsys.readouterr().err


def test_the_service_refuses_to_start_without_a_jwks_file() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AUTH_JWKS_FILE"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    finished = subprocess.run(
        [sys.executable, "-m", "services.notifications.main"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    assert "AUTH_JWKS_FILE" in finished.stderr
    assert "Traceback" not in finished.stderr
