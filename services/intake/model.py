"""The appeal as intake records it, and how lifecycle events move its status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from appeals.v1 import appeal_pb2, events_pb2
from appeals_runtime import vocabulary
from appeals_runtime.events import event_type, occurred_at


@dataclass
class AppealRecord:
    appeal_id: str
    surface: str
    submission: appeal_pb2.AppealSubmission
    status: str
    received_at: datetime
    updated_at: datetime
    queue: str | None = None
    outcome: str | None = None
    ban_evasion_suspected: bool = False

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


@dataclass(frozen=True)
class StatusChange:
    """What one lifecycle event does to the status view."""

    status: str
    at: datetime
    fields: dict[str, Any] = field(default_factory=dict)


def status_change(event: events_pb2.AppealEvent) -> StatusChange | None:
    """The status an event moves its appeal to; None for events that do not change it."""
    kind = event_type(event)
    at = occurred_at(event)
    if kind == "routed":
        return StatusChange("routed", at, {"queue": event.routed.queue})
    if kind == "claimed":
        return StatusChange("in_review", at, {"reviewer": event.claimed.agent_id})
    if kind == "released":
        return StatusChange("routed", at, {"reviewer": None})
    if kind == "decided":
        return StatusChange(
            "decided", at, {"outcome": vocabulary.outcome_name(event.decided.outcome)}
        )
    return None
