"""The REST representation of appeals: request body model and response views.

Unknown fields are rejected (``extra="forbid"``): a misspelt field never silently disappears.
"""

from __future__ import annotations

from typing import Any, Literal

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from appeals.v1 import appeal_pb2
from appeals_runtime import vocabulary
from services.intake.model import AppealRecord

PlatformName = Literal["facebook", "instagram", "whatsapp", "horizon"]
SubjectKindName = Literal[
    "post", "comment", "reel", "story", "message", "account", "page", "group", "event",
    "vr_world", "avatar",
]  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppellantIn(_Strict):
    user_id: str


class SubjectIn(_Strict):
    kind: SubjectKindName
    id: str


class DecisionIn(_Strict):
    id: str
    policy: str
    action: str
    automated: bool
    decided_at: AwareDatetime


class AppealIn(_Strict):
    platform: PlatformName
    appellant: AppellantIn
    subject: SubjectIn
    decision: DecisionIn
    statement: str = ""
    locale: str
    country: str

    def to_proto(self) -> appeal_pb2.AppealSubmission:
        decided_at = Timestamp()
        decided_at.FromDatetime(self.decision.decided_at)
        return appeal_pb2.AppealSubmission(
            platform=vocabulary.PLATFORMS[self.platform],  # type: ignore[arg-type]
            appellant=appeal_pb2.Appellant(user_id=self.appellant.user_id),
            subject=appeal_pb2.Subject(
                kind=vocabulary.SUBJECT_KINDS[self.subject.kind],  # type: ignore[arg-type]
                id=self.subject.id,
            ),
            decision=appeal_pb2.OriginalDecision(
                id=self.decision.id,
                policy=self.decision.policy,
                action=self.decision.action,
                automated=self.decision.automated,
                decided_at=decided_at,
            ),
            statement=self.statement,
            locale=self.locale,
            country=self.country,
        )


class AppealAccepted(BaseModel):
    appeal_id: str
    status: str = Field(examples=["received"])


def submission_view(submission: appeal_pb2.AppealSubmission) -> dict[str, Any]:
    decision = submission.decision
    return {
        "platform": vocabulary.platform_name(submission.platform),
        "appellant": {"user_id": submission.appellant.user_id},
        "subject": {
            "kind": vocabulary.subject_kind_name(submission.subject.kind),
            "id": submission.subject.id,
        },
        "decision": {
            "id": decision.id,
            "policy": decision.policy,
            "action": decision.action,
            "automated": decision.automated,
            "decided_at": decision.decided_at.ToJsonString(),
        },
        "statement": submission.statement,
        "locale": submission.locale,
        "country": submission.country,
    }


def appeal_view(record: AppealRecord) -> dict[str, Any]:
    return {
        "appeal_id": record.appeal_id,
        "status": record.status,
        **submission_view(record.submission),
        "received_at": record.received_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "queue": record.queue,
        "outcome": record.outcome,
    }
