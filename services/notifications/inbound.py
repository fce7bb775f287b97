"""What notifications reads from lifecycle events, checked against the contract.

A violation raises :class:`InvalidMessage` naming the field, so the runner dead-letters the event
with a reason someone can act on instead of retrying what can never succeed.
"""

from __future__ import annotations

from dataclasses import replace

from appeals import events, vocabulary
from appeals.v1 import events_pb2, intake_pb2
from appeals_runtime.errors import InvalidMessage
from services.notifications.model import (
    Contact,
    Decision,
    Notice,
    NotificationKind,
    Outcome,
    Recipient,
)

_OUTCOMES: dict[str, Outcome] = {
    "upheld": "upheld",
    "overturned": "overturned",
    "partially_overturned": "partially_overturned",
}


def check_envelope(event: events_pb2.AppealEvent) -> None:
    if not event.appeal_id:
        raise InvalidMessage("event has no appeal_id", field="appeal_id")
    if not event.event_id:
        raise InvalidMessage("event has no event_id", field="event_id")
    if not event.HasField("occurred_at"):
        raise InvalidMessage("event has no occurred_at", field="occurred_at")


def recipient_from_submitted(event: events_pb2.AppealEvent) -> Recipient:
    """The recipient profile, without personal data (the event has none): who to ask intake
    about, in which language, about what. See :func:`addressed` for the rest."""
    check_envelope(event)
    submission = event.submitted.facts
    platform = vocabulary.platform_name(submission.platform)
    if platform not in vocabulary.PLATFORMS:
        raise InvalidMessage(
            f"unknown platform {submission.platform}", field="submitted.facts.platform"
        )
    if not event.submitted.appellant_pseudonym:
        raise InvalidMessage(
            "submitted event names no appellant", field="submitted.appellant_pseudonym"
        )
    decision = submission.decision
    return Recipient(
        appeal_id=event.appeal_id,
        submitted_event_id=event.event_id,
        platform=platform,
        user_id="",
        locale=submission.locale,
        country=submission.country,
        # An unspecified kind still gets a message ("your content"), not a dead letter.
        subject_kind=vocabulary.subject_kind_name(submission.subject.kind),
        subject_id=submission.subject.id,
        decision_policy=decision.policy,
        decision_action=decision.action,
        decision_automated=decision.automated,
        received_at=events.occurred_at(event),
        decision_made_at=(
            decision.decided_at.ToDatetime(tzinfo=events.occurred_at(event).tzinfo)
            if decision.HasField("decided_at")
            else None
        ),
        person=event.submitted.appellant_pseudonym,
    )


def addressed(profile: Recipient, particulars: intake_pb2.AppealParticulars) -> Recipient:
    """The profile with where to reach the person, as intake holds it now: for this send only,
    never stored (a contact the person corrected with the surface is used from then on)."""
    contact = particulars.contact
    return replace(
        profile,
        user_id=particulars.user_id,
        contact=Contact(
            email=contact.email.strip(),
            phone=contact.phone.strip(),
            preferred_channel=contact.preferred_channel.strip(),
            time_zone=contact.time_zone.strip(),
        ),
    )


# Lifecycle events that tell the appellant something, and what they are told about.
_NOTICE_KINDS: dict[str, NotificationKind] = {
    "submitted": "received",
    "claimed": "in_review",
    "info_requested": "info_requested",
    "escalated": "escalated",
    "decided": "decided",
    "restored": "restored",
}


# Notifications tells the person about what _NOTICE_KINDS lists, keeps who to tell from the
# submitted event and forgets them on an erasure; the rest is internal (routing's and the
# timers' steps, its own notified / failed events, an answer the person gave themselves).
EVENTS = events.EventHandling(
    "notifications",
    handled=frozenset({*_NOTICE_KINDS, "submitted", "particulars_erased"}),
    ignored=frozenset(
        {"routed", "released", "transferred", "sla_warning", "sla_breached", "notified",
         "notification_failed", "info_provided"}
    ),
)  # fmt: skip


def notice_from(event: events_pb2.AppealEvent) -> Notice | None:
    """The notice an event gives the appellant, or None when it tells them nothing new.

    Routing, releases, transfers, SLA timers and our own notified / failed events are internal.
    A failed restore is ops' business (the platform retries it), not a message. A payload this
    build does not know (a newer contract) reads as "unknown" and is skipped too, rather than
    dead-lettered for being from the future.
    """
    kind = _NOTICE_KINDS.get(events.event_type(event))
    if kind is None or (kind == "restored" and not event.restored.succeeded):
        return None
    check_envelope(event)
    if kind == "decided":
        return _notice(event, kind, decision=decision_from_decided(event))
    if kind == "escalated":
        return _notice(event, kind, escalation_target=event.escalated.target)
    if kind == "info_requested":
        question = event.info_requested.question.strip()
        if not question:
            raise InvalidMessage(
                "a request for information asks nothing", field="info_requested.question"
            )
        return _notice(event, kind, question=question)
    return _notice(event, kind)


def _notice(
    event: events_pb2.AppealEvent,
    kind: NotificationKind,
    *,
    decision: Decision | None = None,
    question: str = "",
    escalation_target: str = "",
) -> Notice:
    return Notice(
        appeal_id=event.appeal_id,
        about_event_id=event.event_id,
        kind=kind,
        occurred_at=events.occurred_at(event),
        decision=decision,
        question=question,
        escalation_target=escalation_target,
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
        facts=decided.facts.strip(),
        applied_from_appeal_id=decided.applied_from_appeal_id,
    )
