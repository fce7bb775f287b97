"""Lifecycle events against the notifications contract, the events notifications publishes, the
retry-record headers, and configuration that fails fast. No I/O (one subprocess start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from appeals import events
from appeals.v1 import appeal_pb2, events_pb2, intake_pb2
from appeals_devstack import devkeys
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.settings import SettingsError, load_settings
from services.notifications.config import DEV_WEBHOOK_SECRET, NotificationsSettings
from services.notifications.inbound import (
    addressed,
    decision_from_decided,
    notice_from,
    recipient_from_submitted,
)
from services.notifications.model import Contact, Delivery, Notice
from services.notifications.retries import PendingAttempt
from services.notifications.service import notification_failed_event, notified_event

REPO_ROOT = Path(__file__).resolve().parents[2]


PARTICULARS = intake_pb2.AppealParticulars(
    appeal_id="ap_1",
    user_id="ig-7",
    contact=appeal_pb2.Contact(
        email=" ana@example.org ",
        phone="+4915112345678",
        preferred_channel="email",
        time_zone="Europe/Vienna",
    ),
    statement="Art, not nudity.",
)


@pytest.fixture(autouse=True)
def intake_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every configuration needs a service token to read particulars from intake with."""
    token = devkeys.service_token_file(tmp_path / "service", "notifications")
    monkeypatch.setenv("NOTIFICATIONS_INTAKE_TOKEN_FILE", str(token))


def submitted(appeal_id: str = "ap_1", **facts: object) -> events_pb2.AppealEvent:
    fields: dict[str, object] = {
        "platform": appeal_pb2.PLATFORM_INSTAGRAM,
        "subject": appeal_pb2.Subject(kind=appeal_pb2.SUBJECT_KIND_REEL, id="reel-1"),
        "decision": appeal_pb2.OriginalDecision(policy="nudity", action="removed"),
        "locale": "de-AT",
        "country": "AT",
        **facts,
    }
    return events.new_event(
        event_id="ev-s",
        appeal_id=appeal_id,
        producer="tests",
        submitted=events_pb2.AppealSubmitted(
            facts=appeal_pb2.SubmissionFacts(**fields),  # type: ignore[arg-type]
            appellant_pseudonym="pseudo-7",
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


def test_a_submitted_event_gives_a_recipient_profile_without_personal_data() -> None:
    event = submitted()
    event.submitted.facts.decision.decided_at.FromDatetime(datetime(2025, 1, 2, tzinfo=UTC))
    person = recipient_from_submitted(event)
    assert (person.appeal_id, person.submitted_event_id) == ("ap_1", "ev-s")
    assert (person.platform, person.locale, person.country) == ("instagram", "de-AT", "AT")
    assert (person.subject_kind, person.subject_id) == ("reel", "reel-1")
    assert (person.decision_policy, person.decision_action) == ("nudity", "removed")
    assert person.decision_made_at == datetime(2025, 1, 2, tzinfo=UTC)
    assert person.person_key == "pseudo-7"
    assert person.user_id == "" and person.contact == Contact()


def test_the_particulars_from_intake_address_the_profile_for_one_send() -> None:
    person = addressed(recipient_from_submitted(submitted()), PARTICULARS)
    assert (person.user_id, person.person_key) == ("ig-7", "pseudo-7")
    assert person.contact.email == "ana@example.org"
    assert (person.contact.preferred_channel, person.contact.time_zone) == (
        "email",
        "Europe/Vienna",
    )


def test_failure_reasons_lose_the_persons_addresses() -> None:
    person = addressed(recipient_from_submitted(submitted()), PARTICULARS)
    reason = "550 5.1.1 <ana@example.org> unknown; also tried 4915112345678 and ig-7"
    assert person.redact(reason) == "550 5.1.1 <<email>> unknown; also tried <phone> and <user_id>"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (submitted(appeal_id=""), "appeal_id"),
        (submitted(platform=appeal_pb2.PLATFORM_UNSPECIFIED), "submitted.facts.platform"),
    ],
)
def test_a_submitted_event_that_breaks_the_contract_is_invalid(
    event: events_pb2.AppealEvent, field: str
) -> None:
    with pytest.raises(InvalidMessage) as raised:
        recipient_from_submitted(event)
    assert raised.value.field == field


def test_a_submitted_event_without_a_pseudonym_is_invalid() -> None:
    event = submitted()
    event.submitted.appellant_pseudonym = ""
    with pytest.raises(InvalidMessage) as raised:
        recipient_from_submitted(event)
    assert raised.value.field == "submitted.appellant_pseudonym"


def test_a_decided_event_gives_the_decision_and_an_unknown_outcome_is_invalid() -> None:
    decision = decision_from_decided(decided(appeal_pb2.OUTCOME_OVERTURNED))
    assert (decision.outcome, decision.policy_cited, decision.event_id) == (
        "overturned",
        "nudity",
        "ev-d",
    )
    partial = decision_from_decided(decided(appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED))
    assert partial.outcome == "partially_overturned"
    event = decided()
    event.decided.facts = " The caption names a group. "
    event.decided.applied_from_appeal_id = "ap_0"
    applied = decision_from_decided(event)
    assert (applied.facts, applied.applied_from_appeal_id) == ("The caption names a group.", "ap_0")
    for outcome in (appeal_pb2.OUTCOME_UNSPECIFIED, appeal_pb2.Outcome.ValueType(99)):
        with pytest.raises(InvalidMessage) as raised:
            decision_from_decided(decided(outcome))
        assert raised.value.field == "decided.outcome"


def _event(**payload: object) -> events_pb2.AppealEvent:
    return events.new_event(event_id="ev-x", appeal_id="ap_1", producer="tests", **payload)  # type: ignore[arg-type]


def test_each_lifecycle_event_gives_its_notice_or_none() -> None:
    kinds = {
        "submitted": notice_from(submitted()),
        "claimed": notice_from(_event(claimed=events_pb2.CaseClaimed(agent_id="a"))),
        "info_requested": notice_from(
            _event(info_requested=events_pb2.MoreInformationRequested(question=" Why? "))
        ),
        "escalated": notice_from(_event(escalated=events_pb2.AppealEscalated(target="legal"))),
        "decided": notice_from(decided()),
        "restored": notice_from(_event(restored=events_pb2.RestoreCompleted(succeeded=True))),
    }
    assert {name: n.kind if n else None for name, n in kinds.items()} == {
        "submitted": "received",
        "claimed": "in_review",
        "info_requested": "info_requested",
        "escalated": "escalated",
        "decided": "decided",
        "restored": "restored",
    }
    assert kinds["info_requested"] is not None and kinds["info_requested"].question == "Why?"
    assert kinds["escalated"] is not None and kinds["escalated"].escalation_target == "legal"
    assert kinds["decided"] is not None and kinds["decided"].decision is not None
    silent = [
        _event(routed=events_pb2.AppealRouted(queue="q")),
        _event(released=events_pb2.CaseReleased(agent_id="a")),
        _event(notified=events_pb2.AppellantNotified(kind="received")),
        _event(notification_failed=events_pb2.NotificationFailed(kind="decided")),
        _event(restored=events_pb2.RestoreCompleted(succeeded=False)),
        events_pb2.AppealEvent(event_id="e", appeal_id="ap_1"),  # a payload from the future
    ]
    assert [notice_from(event) for event in silent] == [None] * len(silent)


def test_a_request_for_information_without_a_question_is_invalid() -> None:
    with pytest.raises(InvalidMessage) as raised:
        notice_from(_event(info_requested=events_pb2.MoreInformationRequested(question=" ")))
    assert raised.value.field == "info_requested.question"


def test_an_event_without_an_occurrence_time_is_invalid() -> None:
    event = decided()
    event.ClearField("occurred_at")
    with pytest.raises(InvalidMessage) as raised:
        notice_from(event)
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
        recipient="user_id",
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


def test_a_permanent_failure_event_has_one_id_per_event_and_channel() -> None:
    notice = Notice("ap_1", "ev-d", "decided", datetime(2025, 3, 4, tzinfo=UTC))
    failed = notification_failed_event(
        notice, channel="whatsapp_template", attempt=1, reason="not on WhatsApp",
        occurred_at=datetime(2025, 3, 4, 1, tzinfo=UTC),
    )  # fmt: skip
    again = notification_failed_event(
        notice, channel="whatsapp_template", attempt=1, reason="not on WhatsApp",
        occurred_at=datetime(2025, 3, 4, 2, tzinfo=UTC),
    )  # fmt: skip
    assert failed.event_id == again.event_id
    assert failed.schema == "appeals.v1.NotificationFailed"
    payload = failed.notification_failed
    assert (payload.about_event_id, payload.kind, payload.channel, payload.permanent) == (
        "ev-d",
        "decided",
        "whatsapp_template",
        True,
    )
    assert events.event_type(failed) == "notification_failed"


def test_retry_headers_round_trip_and_malformed_ones_are_invalid() -> None:
    pending = PendingAttempt(
        channel="email",
        attempt=3,
        due_at=datetime(2025, 3, 4, 9, 30, 0, 250000, tzinfo=UTC),
        reason="SMTP 451",
        group="notifications",
    )
    assert PendingAttempt.from_headers(dict(pending.headers())) == pending
    with pytest.raises(InvalidMessage):
        PendingAttempt.from_headers({})
    with pytest.raises(InvalidMessage):
        PendingAttempt.from_headers({**dict(pending.headers()), "notifications.attempt": b"0"})


def test_defaults_run_locally_with_the_recording_sink_and_no_email(tmp_path: Path) -> None:
    _, jwks = devkeys.ensure(tmp_path)
    settings = NotificationsSettings(auth_jwks_file=jwks)  # type: ignore[call-arg]  # + env
    assert settings.platform_channels["whatsapp"] == "whatsapp_template"
    assert settings.provider("whatsapp_template") == (None, None)
    assert settings.smtp_host is None and settings.webhook_url is None
    assert settings.quiet_hours_window() is not None
    assert settings.fallback_channels == ["email"]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"NOTIFICATIONS_SMTP_HOST": "smtp.example.org"}, "NOTIFICATIONS_EMAIL_FROM"),
        (
            {
                "NOTIFICATIONS_SMTP_HOST": "smtp.example.org",
                "NOTIFICATIONS_EMAIL_FROM": "a@example.org",
                "NOTIFICATIONS_SMTP_USERNAME": "u",
                "NOTIFICATIONS_SMTP_PASSWORD": "p",
                "NOTIFICATIONS_SMTP_SECURITY": "none",
            },
            "in clear",
        ),
        ({"NOTIFICATIONS_WHATSAPP_URL": "https://graph.example/v1/1/messages"}, "token"),
        ({"NOTIFICATIONS_WEBHOOK_URL": "https://surface.example/hook"}, "development default"),
        (
            {
                "NOTIFICATIONS_WEBHOOK_URL": "https://surface.example/hook",
                "NOTIFICATIONS_WEBHOOK_SECRET": "short",
            },
            "32 characters",
        ),
        ({"NOTIFICATIONS_PLATFORM_CHANNELS": '{"horizon": "webhook"}'}, "WEBHOOK_URL"),
        ({"NOTIFICATIONS_FALLBACK_CHANNELS": '["pigeon"]'}, "unknown channels"),
        ({"NOTIFICATIONS_QUIET_HOURS": "10pm-8am"}, "HH:MM-HH:MM"),
        ({"NOTIFICATIONS_DISPUTE_SETTLEMENT_URL": "ftp://x"}, "http(s) URL"),
    ],
)
def test_inconsistent_settings_stop_the_service_naming_the_problem(
    tmp_path: Path, env: dict[str, str], names: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _, jwks = devkeys.ensure(tmp_path)
    monkeypatch.setenv("AUTH_JWKS_FILE", str(jwks))
    with pytest.raises(
        ValidationError, match=r"(?s)" + names.replace("(", r"\(").replace(")", r"\)")
    ):
        NotificationsSettings()  # type: ignore[call-arg]  # from the environment


def test_the_dev_webhook_secret_is_accepted_only_on_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, jwks = devkeys.ensure(tmp_path)
    monkeypatch.setenv("AUTH_JWKS_FILE", str(jwks))
    monkeypatch.setenv("NOTIFICATIONS_WEBHOOK_URL", "http://127.0.0.1:9000/hook")
    settings = NotificationsSettings()  # type: ignore[call-arg]  # from the environment
    assert settings.webhook_secret.get_secret_value() == DEV_WEBHOOK_SECRET
    assert DEV_WEBHOOK_SECRET not in repr(settings)  # secrets never reach logs


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
