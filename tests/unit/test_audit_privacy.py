"""Pseudonyms, sealing and crypto-shredding: the log keeps no personal data in the clear.

Today's events carry none (intake keeps it); events in the old layout, with the whole submission
as field 1, are still sealed: entries already in the log, a producer not yet upgraded.
"""

from __future__ import annotations

import pytest

from appeals import events
from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2, events_pb2
from services.audit.log import entries, records
from services.audit.privacy import legacy, sealing
from tests.support.audit import old_layout

SECRETS = sealing.derive_secrets(b"\x01" * 32)
OTHER_SECRETS = sealing.derive_secrets(b"\x02" * 32)


def submission() -> appeal_pb2.AppealSubmission:
    return appeal_pb2.AppealSubmission(
        platform=appeal_pb2.PLATFORM_INSTAGRAM,
        appellant=appeal_pb2.Appellant(
            user_id="17841400000000001",
            role=appeal_pb2.APPELLANT_ROLE_AFFECTED_USER,
            contact=appeal_pb2.Contact(email="lena@example.org", phone="+4915112345678"),
        ),
        subject=appeal_pb2.Subject(kind=appeal_pb2.SUBJECT_KIND_POST, id="3141"),
        decision=appeal_pb2.OriginalDecision(policy="hate_speech", action="removed"),
        statement="Das war ein Zitat aus einem Artikel, Lena M., Berlin.",
        locale="de-DE",
        country="DE",
        attachments=[appeal_pb2.Attachment(media_type="image/png", uri="https://x/lena.png")],
    )


def submitted_event() -> events_pb2.AppealEvent:
    """A submitted event in the old layout."""
    return events.new_event(
        event_id="e-1",
        appeal_id="ap_1",
        producer="intake",
        submitted=old_layout(events_pb2.AppealSubmitted(channel="rest"), submission()),
    )


def test_todays_submitted_event_holds_no_personal_data_and_is_logged_as_it_is() -> None:
    today = events.new_event(
        event_id="e-1",
        appeal_id="ap_1",
        producer="intake",
        submitted=events_pb2.AppealSubmitted(
            facts=submission_facts(submission()), channel="rest", appellant_pseudonym="psn_1"
        ),
    )
    recorded = records.from_lifecycle_event(today, topic="t", secrets=SECRETS)
    assert (recorded.personal, recorded.subject) == (None, None)
    assert recorded.event.payload == today.SerializeToString(deterministic=True)
    for secret in (b"17841400000000001", b"lena@example.org", b"Zitat", b"x/lena"):
        assert secret not in recorded.event.payload


def test_an_old_layout_submitted_event_is_logged_without_personal_data_in_the_clear() -> None:
    recorded = records.from_lifecycle_event(submitted_event(), topic="t", secrets=SECRETS)

    assert recorded.personal is not None
    assert recorded.subject is not None
    for secret in (
        b"17841400000000001",
        b"lena@example.org",
        b"+4915112345678",
        b"Zitat",
        b"x/lena",
    ):
        assert secret not in recorded.event.payload
    kept = events_pb2.AppealEvent.FromString(recorded.event.payload).submitted
    assert kept.appellant_pseudonym == recorded.subject
    # What exports need stays, in today's layout.
    assert legacy.legacy_submission(kept) is None
    assert kept.facts.decision.policy == "hate_speech"
    assert (kept.facts.locale, kept.facts.country) == ("de-DE", "DE")


def test_the_pseudonym_is_stable_per_person_and_meaningless_without_the_key() -> None:
    one = sealing.pseudonym(SECRETS, platform=2, user_id="u-1")
    assert one == sealing.pseudonym(SECRETS, platform=2, user_id="u-1")
    assert one != sealing.pseudonym(SECRETS, platform=2, user_id="u-2")
    assert one != sealing.pseudonym(SECRETS, platform=1, user_id="u-1")
    assert one != sealing.pseudonym(OTHER_SECRETS, platform=2, user_id="u-1")
    assert one.startswith("ps_")
    assert "u-1" not in one


def test_sealed_personal_data_opens_with_the_persons_key() -> None:
    recorded = records.from_lifecycle_event(submitted_event(), topic="t", secrets=SECRETS)
    assert recorded.personal is not None
    assert recorded.subject is not None
    data_key = sealing.new_data_key()
    sealed = sealing.seal(data_key, recorded.personal, subject=recorded.subject, event_id="e-1")

    opened = appeal_pb2.AppealSubmission.FromString(
        sealing.open_sealed(data_key, sealed, event_id="e-1")
    )

    assert opened.appellant.user_id == "17841400000000001"
    assert opened.appellant.contact.email == "lena@example.org"
    assert opened.statement.startswith("Das war ein Zitat")
    assert [a.uri for a in opened.attachments] == ["https://x/lena.png"]
    assert b"lena" not in sealed["ciphertext"].encode()


def test_after_crypto_shredding_the_data_is_gone_but_the_entry_still_hashes_the_same() -> None:
    recorded = records.from_lifecycle_event(submitted_event(), topic="t", secrets=SECRETS)
    assert recorded.personal is not None
    assert recorded.subject is not None
    data_key = sealing.new_data_key()
    sealed = sealing.seal(data_key, recorded.personal, subject=recorded.subject, event_id="e-1")
    event = entries.LoggedEvent(**{**recorded.event.__dict__, "sealed": sealed})
    entry = entries.new_entry(event, index=0, recorded_at=recorded.event.occurred_at)

    with pytest.raises(sealing.Erased):
        sealing.open_sealed(None, sealed, event_id="e-1")  # the key was deleted
    with pytest.raises(sealing.Erased):
        sealing.open_sealed(sealing.new_data_key(), sealed, event_id="e-1")
    assert entries.entry_leaf_hash(entry).hex() == entry["leaf_hash"]


def test_a_sealed_blob_cannot_be_moved_to_another_event() -> None:
    data_key = sealing.new_data_key()
    sealed = sealing.seal(data_key, b"personal", subject="ps_1", event_id="e-1")
    with pytest.raises(sealing.Erased):
        sealing.open_sealed(data_key, sealed, event_id="e-2")


def test_data_keys_are_wrapped_under_the_master_secret_and_bound_to_their_subject() -> None:
    data_key = sealing.new_data_key()
    wrapped = sealing.wrap_key(SECRETS, data_key, subject="ps_1")
    assert sealing.unwrap_key(SECRETS, wrapped, subject="ps_1") == data_key
    with pytest.raises(sealing.Erased):
        sealing.unwrap_key(SECRETS, wrapped, subject="ps_2")
    with pytest.raises(sealing.Erased):
        sealing.unwrap_key(OTHER_SECRETS, wrapped, subject="ps_1")


def test_an_old_layout_escalation_package_is_sealed_for_the_same_person() -> None:
    submitted = submitted_event()
    package = old_layout(events_pb2.CasePackage(question="?"), submission())
    escalated = events.new_event(
        event_id="e-2",
        appeal_id="ap_1",
        producer="routing",
        escalated=events_pb2.AppealEscalated(target="oversight_board", package=package),
    )

    first = records.from_lifecycle_event(submitted, topic="t", secrets=SECRETS)
    later = records.from_lifecycle_event(escalated, topic="t", secrets=SECRETS)

    assert later.subject == first.subject
    assert b"lena@example.org" not in later.event.payload
    kept = events_pb2.AppealEvent.FromString(later.event.payload).escalated
    assert (kept.target, kept.package.question) == ("oversight_board", "?")
    assert kept.package.facts.platform == appeal_pb2.PLATFORM_INSTAGRAM


def test_events_without_personal_data_pass_unchanged() -> None:
    routed = events.new_event(
        event_id="e-3", appeal_id="ap_1", producer="routing", routed=events_pb2.AppealRouted()
    )
    recorded = records.from_lifecycle_event(routed, topic="t", secrets=SECRETS)
    assert (recorded.personal, recorded.subject) == (None, None)
    assert recorded.event.payload == routed.SerializeToString(deterministic=True)


def test_a_master_secret_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        sealing.derive_secrets(b"short")
