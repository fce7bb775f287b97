"""What notifications reads from lifecycle events, checked against the contract.

A violation raises :class:`InvalidMessage` naming the field, so the runner dead-letters the event
with a reason someone can act on instead of retrying what can never succeed.
"""

from __future__ import annotations

from appeals.v1 import events_pb2
from appeals_runtime import events, vocabulary
from appeals_runtime.errors import InvalidMessage
from services.notifications.model import Decision, Outcome, Recipient

_OUTCOMES: dict[str, Outcome] = {"upheld": "upheld", "overturned": "overturned"}


def check_envelope(event: events_pb2.AppealEvent) -> None:
    if not event.appeal_id:
        raise InvalidMessage("event has no appeal_id", field="appeal_id")
    if not event.event_id:
        raise InvalidMessage("event has no event_id", field="event_id")
    if not event.HasField("occurred_at"):
        raise InvalidMessage("event has no occurred_at", field="occurred_at")


def recipient_from_submitted(event: events_pb2.AppealEvent) -> Recipient:
    check_envelope(event)
    submission = event.submitted.submission
    platform = vocabulary.platform_name(submission.platform)
    if platform not in vocabulary.PLATFORMS:
        raise InvalidMessage(
            f"unknown platform {submission.platform}", field="submitted.submission.platform"
        )
    if not submission.appellant.user_id:
        raise InvalidMessage(
            "submission names no appellant", field="submitted.submission.appellant.user_id"
        )
    return Recipient(
        appeal_id=event.appeal_id,
        submitted_event_id=event.event_id,
        platform=platform,
        user_id=submission.appellant.user_id,
        locale=submission.locale,
        country=submission.country,
        # An unspecified kind still gets a message ("your content"), not a dead letter.
        subject_kind=vocabulary.subject_kind_name(submission.subject.kind),
        subject_id=submission.subject.id,
        decision_policy=submission.decision.policy,
        decision_action=submission.decision.action,
        decision_automated=submission.decision.automated,
        received_at=events.occurred_at(event),
    )


def decision_from_decided(event: events_pb2.AppealEvent) -> Decision:
    check_envelope(event)
    decided = event.decided
    outcome = _OUTCOMES.get(vocabulary.outcome_name(decided.outcome))
    if outcome is None:
        raise InvalidMessage(f"unknown outcome {decided.outcome}", field="decided.outcome")
    return Decision(
        appeal_id=event.appeal_id,
        event_id=event.event_id,
        outcome=outcome,
        rationale=decided.rationale,
        policy_cited=decided.policy_cited,
        decided_at=events.occurred_at(event),
    )
