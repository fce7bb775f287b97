"""Intake's validation and identities: pure rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2
from appeals_runtime.errors import FieldViolation, ValidationFailed
from services.intake import identity, validation
from services.intake.model import without_particulars
from services.intake.schemas import AppealIn
from tests.support.bodies import valid_body

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def submission(**changes: object) -> appeal_pb2.AppealSubmission:
    body = valid_body() | changes
    return AppealIn.model_validate(body).to_proto()


def fields(violations: list[FieldViolation]) -> set[str]:
    return {v.field for v in violations}


def test_the_example_from_the_issue_is_valid() -> None:
    assert validation.submission_violations(submission(), now=NOW) == []


def test_every_invalid_field_is_named() -> None:
    # As gRPC or a Kafka request can carry it (over REST the schema refuses it first).
    bad = submission()
    bad.appellant.user_id = "has spaces"
    bad.subject.id = ""
    bad.locale = "German"
    bad.country = "de"
    bad.statement = "x" * (validation.MAX_STATEMENT_CHARS + 1)
    assert fields(validation.submission_violations(bad, now=NOW)) == {
        "appellant.user_id", "subject.id", "locale", "country", "statement",
    }  # fmt: skip


def test_the_rest_schema_declares_the_same_rules() -> None:
    """What the OpenAPI document allows is what intake takes: the model refuses what
    validation.py refuses, field by field (the patterns are the same strings)."""
    cases: dict[str, dict[str, object]] = {
        "appellant.user_id": {"appellant": {"user_id": "has spaces"}},
        "locale": {"locale": "German"},
        "country": {"country": "de"},
        "statement": {"statement": "x" * (validation.MAX_STATEMENT_CHARS + 1)},
        "attachments.0.uri": {
            "attachments": [{"media_type": "image/png", "uri": "http://x", "size_bytes": 1}]
        },
        "signals.device_hint": {"signals": {"device_hint": "short"}},
        "appellant.contact.phone": {"appellant": {"user_id": "u1", "contact": {"phone": "0151"}}},
    }
    for field, change in cases.items():
        with pytest.raises(ValidationError) as refused:
            AppealIn.model_validate(valid_body() | change)
        assert {".".join(map(str, e["loc"])) for e in refused.value.errors()} == {field}, field


def test_a_decision_from_the_future_is_implausible_beyond_clock_skew() -> None:
    soon = (NOW + timedelta(minutes=2)).isoformat()
    later = (NOW + timedelta(hours=1)).isoformat()
    base = valid_body()["decision"]
    assert isinstance(base, dict)
    ok = submission(decision={**base, "decided_at": soon})
    bad = submission(decision={**base, "decided_at": later})
    assert validation.implausibilities(ok, now=NOW) == []
    # Well-formed (the schema allows any date-time), so 422 rather than 400.
    assert validation.submission_violations(bad, now=NOW) == []
    assert fields(validation.implausibilities(bad, now=NOW)) == {"decision.decided_at"}


def test_unspecified_enums_from_grpc_are_violations() -> None:
    empty = appeal_pb2.AppealSubmission()
    assert {"platform", "subject.kind", "decision.decided_at"} <= fields(
        validation.submission_violations(empty, now=NOW)
    )


def test_idempotency_keys_are_required_and_printable() -> None:
    assert fields(validation.idempotency_key_violations("Idempotency-Key", None)) == {
        "Idempotency-Key"
    }
    assert validation.idempotency_key_violations("k", "with space") != []
    assert validation.idempotency_key_violations("k", "a" * 300) != []
    assert validation.idempotency_key_violations("k", "9f1c-4d2a") == []
    with pytest.raises(ValidationFailed):
        validation.ensure_valid(validation.idempotency_key_violations("k", ""))


def test_keys_are_scoped_per_surface_and_appeal_ids_are_fresh() -> None:
    assert identity.idempotency_scope("ig-web", "k") != identity.idempotency_scope("fb-web", "k")
    one, two = identity.new_appeal_id(), identity.new_appeal_id()
    assert one != two and one.startswith("ap_")
    assert identity.submitted_event_id(one) == identity.submitted_event_id(one)


def test_appellant_keys_are_keyed_and_stable_and_pseudonyms_are_not_derived() -> None:
    key = b"k" * 32
    one = identity.appellant_key(key, 1, "17841400000000001")
    assert one == identity.appellant_key(key, 1, "17841400000000001")
    assert one != identity.appellant_key(b"x" * 32, 1, "17841400000000001")
    assert one != identity.appellant_key(key, 2, "17841400000000001")
    assert "17841400000000001" not in one
    # Random: once intake forgets whose one is, nothing can recompute it from the user id.
    assert identity.new_pseudonym() != identity.new_pseudonym()
    assert identity.new_pseudonym().startswith("psn_")


def test_an_erased_submission_keeps_exactly_its_facts() -> None:
    full = submission()
    full.appellant.contact.email = "someone@example.org"
    full.signals.device_hint = "device-hash-1"
    kept = without_particulars(full)
    assert submission_facts(kept) == submission_facts(full)
    assert not kept.appellant.user_id and not kept.statement and not kept.attachments
    assert not kept.appellant.contact.ByteSize() and not kept.signals.device_hint


def test_unknown_protobuf_fields_are_named_wherever_they_are() -> None:
    raw = submission().SerializeToString()
    appellant_with_extra = appeal_pb2.Appellant(user_id="1").SerializeToString() + bytes(
        [0xF8, 0x07, 0x01]
    )
    # field 2 (appellant), length-delimited, carrying an unknown field 127 inside it
    tampered = raw + bytes([0x12, len(appellant_with_extra)]) + appellant_with_extra
    parsed = appeal_pb2.AppealSubmission()
    parsed.ParseFromString(tampered)
    assert {v.field for v in validation.unknown_field_violations(parsed)} == {"appellant#127"}


def test_fingerprints_tell_bodies_apart() -> None:
    assert identity.fingerprint(submission()) == identity.fingerprint(submission())
    assert identity.fingerprint(submission()) != identity.fingerprint(submission(statement="other"))


def test_unknown_fields_are_rejected_by_the_rest_model() -> None:
    with pytest.raises(ValueError, match="status"):
        AppealIn.model_validate(valid_body() | {"status": "decided"})


def test_who_made_the_original_decision_is_required() -> None:
    """Routing keeps the original decider from reviewing the appeal: it must know who it was."""
    unknown = submission()
    unknown.decision.decided_by = ""
    spaced = submission()
    spaced.decision.decided_by = "a moderator"
    assert fields(validation.submission_violations(unknown, now=NOW)) == {"decision.decided_by"}
    assert fields(validation.submission_violations(spaced, now=NOW)) == {"decision.decided_by"}


def test_a_content_date_is_an_iso_date_not_after_the_decision() -> None:
    example = valid_body()
    subject, decision = example["subject"], example["decision"]
    assert isinstance(subject, dict) and isinstance(decision, dict)
    decided = datetime.fromisoformat(str(decision["decided_at"])).date()
    dated = submission(subject={**subject, "content_date": "2024-06-01"})
    assert dated.subject.content_date == "2024-06-01"
    assert validation.submission_violations(dated, now=NOW) == []
    assert validation.implausibilities(dated, now=NOW) == []
    later = submission(subject={**subject, "content_date": str(decided + timedelta(days=3))})
    assert fields(validation.implausibilities(later, now=NOW)) == {"subject.content_date"}
    ancient = submission(subject={**subject, "content_date": "1999-12-31"})
    assert fields(validation.implausibilities(ancient, now=NOW)) == {"subject.content_date"}
    raw = submission()
    raw.subject.content_date = "01/06/2024"  # over gRPC or Kafka nothing parsed it yet
    assert fields(validation.submission_violations(raw, now=NOW)) == {"subject.content_date"}
    impossible = submission()
    impossible.subject.content_date = "2024-02-30"
    assert fields(validation.implausibilities(impossible, now=NOW)) == {"subject.content_date"}
