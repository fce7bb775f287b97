"""The appeal as intake records it, and how lifecycle events move its status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from appeals import vocabulary
from appeals.events import event_type, occurred_at
from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2, events_pb2, intake_pb2


@dataclass
class AppealRecord:
    """An appeal with everything the surface submitted: the only place the appellant's personal
    data lives in the pipeline."""

    appeal_id: str
    surface: str
    submission: appeal_pb2.AppealSubmission
    status: str
    received_at: datetime
    updated_at: datetime
    queue: str | None = None
    outcome: str | None = None
    ban_evasion_suspected: bool = False
    # False from just before the submitted event is published until the broker acknowledged it.
    acknowledged: bool = True
    # The open request for information, while the appeal waits for the appellant's answer.
    info_request: InfoRequest | None = None
    # The appellant's answers to requests for information, oldest first (personal data).
    information: list[appeal_pb2.InformationExchange] = field(default_factory=list)
    # When the appellant's particulars were erased at their request (the submission keeps only
    # its non-personal facts from then on).
    erased_at: datetime | None = None

    @property
    def platform(self) -> str:
        return vocabulary.platform_name(self.submission.platform)

    def to_proto(self) -> appeal_pb2.Appeal:
        appeal = appeal_pb2.Appeal(
            appeal_id=self.appeal_id,
            submission=self.submission,
            status=vocabulary.STATUSES[self.status],  # type: ignore[arg-type]
            queue=self.queue or "",
            outcome=vocabulary.OUTCOMES.get(self.outcome or "", 0),  # type: ignore[arg-type]
        )
        appeal.received_at.FromDatetime(self.received_at)
        appeal.updated_at.FromDatetime(self.updated_at)
        return appeal

    def particulars(self) -> intake_pb2.AppealParticulars:
        if self.erased_at is not None:
            return intake_pb2.AppealParticulars(appeal_id=self.appeal_id, erased=True)
        submission = self.submission
        return intake_pb2.AppealParticulars(
            appeal_id=self.appeal_id,
            user_id=submission.appellant.user_id,
            contact=submission.appellant.contact,
            statement=submission.statement,
            attachments=submission.attachments,
            information=self.information,
        )


def without_particulars(submission: appeal_pb2.AppealSubmission) -> appeal_pb2.AppealSubmission:
    """What an erasure leaves of a submission: exactly its facts (what every event about the
    appeal carries anyway), so status look-ups still describe the appeal."""
    facts = submission_facts(submission)
    kept = appeal_pb2.AppealSubmission(
        platform=facts.platform,
        subject=facts.subject,
        decision=facts.decision,
        locale=facts.locale,
        country=facts.country,
    )
    kept.appellant.role = facts.appellant_role
    kept.signals.account_reach = facts.signals.account_reach
    kept.signals.vulnerable_user = facts.signals.vulnerable_user
    if facts.signals.HasField("legal_deadline"):
        kept.signals.legal_deadline.CopyFrom(facts.signals.legal_deadline)
    return kept


@dataclass(frozen=True)
class InfoRequest:
    """What a reviewer asked the appellant (from the info_requested event), and until when."""

    request_event_id: str
    question: str
    respond_by: datetime | None


@dataclass(frozen=True)
class StatusChange:
    """What one lifecycle event does to the status view."""

    status: str
    at: datetime
    fields: dict[str, Any] = field(default_factory=dict)


# What each status-changing event adds to the view besides the status itself.
def _routed(event: events_pb2.AppealEvent) -> dict[str, Any]:
    return {"queue": event.routed.queue}


def _claimed(event: events_pb2.AppealEvent) -> dict[str, Any]:
    return {"reviewer": event.claimed.agent_id}


def _released(event: events_pb2.AppealEvent) -> dict[str, Any]:
    # Also the end of a wait for the appellant's answer (answered, or not in time).
    return {"reviewer": None, "info_request": None}


def _decided(event: events_pb2.AppealEvent) -> dict[str, Any]:
    return {"outcome": vocabulary.outcome_name(event.decided.outcome)}


def _escalated(event: events_pb2.AppealEvent) -> dict[str, Any]:
    # Senior or legal queues, or an Oversight Board referral (which has no queue here).
    return {"queue": event.escalated.to_queue or None, "reviewer": None}


def _transferred(event: events_pb2.AppealEvent) -> dict[str, Any]:
    return {"queue": event.transferred.to_queue, "reviewer": None}


def _info_requested(event: events_pb2.AppealEvent) -> dict[str, Any]:
    requested = event.info_requested
    respond_by = requested.respond_by.ToDatetime(UTC) if requested.HasField("respond_by") else None
    return {
        "reviewer": None,
        "info_request": {
            "request_event_id": event.event_id,
            "question": requested.question,
            "respond_by": respond_by,
        },
    }


def _info_provided(event: events_pb2.AppealEvent) -> dict[str, Any]:
    return {"info_request": None}


# "submitted" is absent: intake writes the record itself before publishing that event.
_FIELDS_BY_EVENT: dict[str, Callable[[events_pb2.AppealEvent], dict[str, Any]]] = {
    "routed": _routed,
    "claimed": _claimed,
    "released": _released,
    "decided": _decided,
    "escalated": _escalated,
    "transferred": _transferred,
    "info_requested": _info_requested,
    "info_provided": _info_provided,
}


# The events that change an appeal's status view.
STATUS_EVENTS = frozenset(_FIELDS_BY_EVENT)


def status_change(event: events_pb2.AppealEvent) -> StatusChange | None:
    """The status an event moves its appeal to; None for events that do not change it."""
    kind = event_type(event)
    fields = _FIELDS_BY_EVENT.get(kind)
    if fields is None:
        return None
    return StatusChange(vocabulary.STATUS_AFTER_EVENT[kind], occurred_at(event), fields(event))
