"""What the audit log records about lifecycle events and restore commands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appeals import events, topics
from appeals.v1 import appeal_pb2, commands_pb2, events_pb2
from appeals_runtime.errors import InvalidMessage
from services.audit.log import records
from services.audit.privacy import sealing

AT = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
SECRETS = sealing.derive_secrets(bytes(32))


def routed_event(
    *, event_id: str = "e-1", appeal_id: str = "a-1", producer: str = "routing"
) -> events_pb2.AppealEvent:
    return events.new_event(
        event_id=event_id,
        appeal_id=appeal_id,
        producer=producer,
        occurred_at=AT,
        routed=events_pb2.AppealRouted(queue="facebook.en"),
    )


def restore_command(**overrides: str) -> commands_pb2.RestoreCommand:
    command = commands_pb2.RestoreCommand(
        command_id="c-1",
        appeal_id="a-1",
        causation_id="e-decided",
        platform=appeal_pb2.PLATFORM_FACEBOOK,
    )
    command.issued_at.FromDatetime(AT)
    for name, value in overrides.items():
        setattr(command, name, value)
    return command


def test_a_lifecycle_event_is_recorded_with_its_type_and_envelope() -> None:
    event = routed_event()

    recorded = records.from_lifecycle_event(
        event, topic=topics.APPEAL_LIFECYCLE.name, secrets=SECRETS
    )
    logged = recorded.event

    assert (logged.event_id, logged.appeal_id, logged.type) == ("e-1", "a-1", "routed")
    assert (logged.schema, logged.producer) == ("appeals.v1.AppealRouted", "routing")
    assert logged.topic == topics.APPEAL_LIFECYCLE.name
    assert logged.occurred_at == AT
    assert events_pb2.AppealEvent.FromString(logged.payload) == event
    assert (recorded.personal, recorded.subject) == (None, None)


def test_a_restore_command_is_recorded_as_restore_requested_under_its_command_id() -> None:
    topic = topics.restore_commands_topic(appeal_pb2.PLATFORM_FACEBOOK).name
    command = restore_command()

    logged = records.from_restore_command(command, topic=topic, producer="routing").event

    assert (logged.event_id, logged.appeal_id, logged.type) == ("c-1", "a-1", "restore_requested")
    assert (logged.schema, logged.producer, logged.topic) == (
        "appeals.v1.RestoreCommand",
        "routing",
        topic,
    )
    assert logged.occurred_at == AT
    assert commands_pb2.RestoreCommand.FromString(logged.payload) == command


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (routed_event(event_id=""), "event_id"),
        (routed_event(appeal_id=""), "appeal_id"),
        (events_pb2.AppealEvent(event_id="e", appeal_id="a", occurred_at=None), "occurred_at"),
    ],
)
def test_a_lifecycle_event_the_log_cannot_attribute_is_invalid(
    event: events_pb2.AppealEvent, field: str
) -> None:
    with pytest.raises(InvalidMessage) as raised:
        records.from_lifecycle_event(event, topic="t", secrets=SECRETS)
    assert raised.value.field == field


def test_a_lifecycle_event_without_payload_is_invalid() -> None:
    event = routed_event()
    event.ClearField("routed")
    with pytest.raises(InvalidMessage) as raised:
        records.from_lifecycle_event(event, topic="t", secrets=SECRETS)
    assert raised.value.field == "payload"


def test_a_restore_command_without_id_or_time_is_invalid() -> None:
    with pytest.raises(InvalidMessage):
        records.from_restore_command(restore_command(command_id=""), topic="t", producer="p")
    untimed = restore_command()
    untimed.ClearField("issued_at")
    with pytest.raises(InvalidMessage) as raised:
        records.from_restore_command(untimed, topic="t", producer="p")
    assert raised.value.field == "issued_at"


def test_an_appeals_summary_accumulates_what_its_events_say() -> None:
    submitted = events.new_event(
        event_id="e-0",
        appeal_id="a-1",
        producer="intake",
        occurred_at=AT,
        submitted=events_pb2.AppealSubmitted(
            facts=appeal_pb2.SubmissionFacts(platform=appeal_pb2.PLATFORM_HORIZON)
        ),
    )
    transferred = events.new_event(
        event_id="e-2",
        appeal_id="a-1",
        producer="routing",
        transferred=events_pb2.CaseTransferred(from_queue="horizon.en", to_queue="horizon.senior"),
    )
    decided = events.new_event(
        event_id="e-3",
        appeal_id="a-1",
        producer="routing",
        occurred_at=AT,
        decided=events_pb2.AppealDecided(outcome=appeal_pb2.OUTCOME_UPHELD),
    )

    summary = records.AppealSummary.starting(records.index_facts(submitted), 7)
    summary = summary.then(records.index_facts(routed_event()), 9)
    summary = summary.then(records.index_facts(transferred), 12)
    summary = summary.then(records.index_facts(decided), 15)

    assert summary == records.AppealSummary(
        first_index=7,
        platform="horizon",  # the routed event names no platform: the first one stands
        queues=("facebook.en", "horizon.senior"),
        outcome="upheld",
        submitted_at=AT,
        decided_at=AT,
    )


def test_the_trace_id_comes_from_a_w3c_traceparent_header() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert records.trace_id(f"00-{trace}-00f067aa0ba902b7-01".encode()) == trace
    # Later versions may append fields; the first four keep their meaning.
    assert records.trace_id(f"01-{trace}-00f067aa0ba902b7-01-future".encode()) == trace
    for unusable in (
        None,
        b"",
        b"garbage",
        f"ff-{trace}-00f067aa0ba902b7-01".encode(),  # version ff is invalid
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{trace.upper()}-00f067aa0ba902b7-01".encode(),  # must be lower-case hex
    ):
        assert records.trace_id(unusable) is None
