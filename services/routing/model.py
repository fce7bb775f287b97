"""Cases and claims as routing keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appeals.v1 import agent_desk_pb2, appeal_pb2


@dataclass
class Case:
    appeal_id: str
    queue: str
    priority: int
    sla_due_at: datetime
    received_at: datetime
    submission: appeal_pb2.AppealSubmission
    # queued → in_review (claimed) → decided; a release or an expired lease makes it queued again.
    status: str
    claimed_by: str | None = None
    lease_expires_at: datetime | None = None

    def is_open(self, now: datetime) -> bool:
        """Offerable: waiting in its queue, or claimed by someone whose lease has run out."""
        if self.status == "queued":
            return True
        return (
            self.status == "in_review"
            and self.lease_expires_at is not None
            and self.lease_expires_at <= now
        )

    def to_offer(self) -> agent_desk_pb2.CaseOffer:
        offer = agent_desk_pb2.CaseOffer(
            appeal_id=self.appeal_id,
            queue=self.queue,
            priority=self.priority,
            submission=self.submission,
        )
        offer.sla_due_at.FromDatetime(self.sla_due_at)
        offer.received_at.FromDatetime(self.received_at)
        return offer


@dataclass(frozen=True)
class Claim:
    appeal_id: str
    # 1 for the first claim of a case, +1 for each later one; unique per case.
    epoch: int
    agent_id: str
    claimed_at: datetime
    lease_expires_at: datetime
    released: bool = False

    def active(self, now: datetime) -> bool:
        return not self.released and self.lease_expires_at > now


@dataclass(frozen=True)
class Decision:
    appeal_id: str
    agent_id: str
    outcome: int
    rationale: str
    policy_cited: str
    decided_at: datetime
