"""The REST representation of appeals: request body model and response views.

Unknown fields are rejected (``extra="forbid"``): a misspelt field never silently disappears.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from appeals import attachments, platforms, vocabulary
from appeals.v1 import appeal_pb2
from services.intake import validation
from services.intake.model import AppealRecord

if TYPE_CHECKING:
    PlatformName: TypeAlias = str
    PreferredChannel: TypeAlias = str
else:
    # The declared platforms (appeals.platforms), as an enum in the OpenAPI document.
    PlatformName = Literal[platforms.NAMES]
    PreferredChannel = Literal["", validation.ContactChannel]
SubjectKindName = Literal[
    "post", "comment", "reel", "story", "message", "account", "page", "group", "event",
    "vr_world", "avatar",
]  # fmt: skip


# What intake enforces, declared (validation.py checks the same patterns on every channel): a
# client generated from this schema sends only what intake takes.
Identifier = Annotated[
    str, Field(min_length=1, max_length=validation.MAX_ID_CHARS, pattern=validation.ID_PATTERN)
]
SnakeCase = Annotated[str, Field(pattern=validation.SNAKE_CASE_PATTERN)]
HashHint = Annotated[str, Field(pattern=validation.HASH_HINT_PATTERN)]


def _or_empty(pattern: str) -> str:
    """An optional text field: empty, or matching ``pattern``."""
    return f"^$|{pattern}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _valid_unicode(cls, value: object) -> object:
        # JSON may carry lone UTF-16 surrogates ("\ud800"); they are not text and protobuf
        # refuses them, so they are refused here with the field named.
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("is not valid Unicode text") from None
        return value


class ContactIn(_Strict):
    email: str = Field(default="", pattern=_or_empty(validation.EMAIL_PATTERN))
    phone: str = Field(default="", pattern=_or_empty(validation.E164_PATTERN), description="E.164")
    preferred_channel: PreferredChannel = ""
    # An IANA time zone (e.g. Europe/Berlin); one this installation does not know is 422.
    time_zone: str = Field(default="", pattern=_or_empty(validation.TIME_ZONE_PATTERN))


class AppellantIn(_Strict):
    user_id: Identifier
    role: Literal["affected_user", "reporter"] = "affected_user"
    contact: ContactIn | None = None


class SubjectIn(_Strict):
    kind: SubjectKindName
    id: Identifier
    content_hash: str = ""
    # When the content was posted (or the account created), if known: the DSA export's
    # content_date; the original decision's date stands in when it is absent.
    content_date: date | None = None


class DecisionIn(_Strict):
    id: Identifier
    policy: SnakeCase = Field(description="snake_case, e.g. hate_speech")
    action: SnakeCase = Field(description="snake_case, e.g. removed")
    automated: bool
    # Not in the future (beyond five minutes of clock skew): 422 otherwise.
    decided_at: AwareDatetime
    notified_at: AwareDatetime | None = None
    non_appealable_reason: str = ""
    # Who made the decision (a reviewer's id or a classifier's name): required, so that routing
    # can always keep its reviewer from reviewing it.
    decided_by: Identifier


class SignalsIn(_Strict):
    account_reach: int = Field(default=0, ge=0, le=validation.MAX_ACCOUNT_REACH)
    vulnerable_user: bool = False
    legal_deadline: AwareDatetime | None = None
    device_hint: str = Field(default="", pattern=_or_empty(validation.HASH_HINT_PATTERN))
    network_hint: str = Field(default="", pattern=_or_empty(validation.HASH_HINT_PATTERN))
    linked_account_hashes: list[HashHint] = Field(
        default_factory=list, max_length=validation.MAX_LINKED_ACCOUNT_HASHES
    )


class AttachmentIn(_Strict):
    media_type: attachments.AttachmentType
    uri: str = Field(
        max_length=attachments.MAX_URL_CHARS, pattern=attachments.HTTPS_URL_PATTERN,
        description="https:// only",
    )  # fmt: skip
    size_bytes: int = Field(ge=1, le=attachments.MAX_ATTACHMENT_BYTES)


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class AppealIn(_Strict):
    platform: PlatformName
    appellant: AppellantIn
    subject: SubjectIn
    decision: DecisionIn
    statement: str = Field(default="", max_length=validation.MAX_STATEMENT_CHARS)
    locale: str = Field(pattern=validation.LOCALE_PATTERN, examples=["de-DE"])
    country: str = Field(pattern=validation.COUNTRY_PATTERN, examples=["DE"])
    signals: SignalsIn | None = None
    attachments: list[AttachmentIn] = Field(
        default_factory=list, max_length=attachments.MAX_ATTACHMENTS
    )

    def to_proto(self) -> appeal_pb2.AppealSubmission:
        contact = self.appellant.contact or ContactIn()
        signals = self.signals or SignalsIn()
        submission = appeal_pb2.AppealSubmission(
            platform=vocabulary.PLATFORMS[self.platform],  # type: ignore[arg-type]
            appellant=appeal_pb2.Appellant(
                user_id=self.appellant.user_id,
                role=vocabulary.APPELLANT_ROLES[self.appellant.role],  # type: ignore[arg-type]
                contact=appeal_pb2.Contact(**contact.model_dump()),
            ),
            subject=appeal_pb2.Subject(
                kind=vocabulary.SUBJECT_KINDS[self.subject.kind],  # type: ignore[arg-type]
                id=self.subject.id,
                content_hash=self.subject.content_hash,
                content_date=self.subject.content_date.isoformat()
                if self.subject.content_date
                else "",
            ),
            decision=appeal_pb2.OriginalDecision(
                id=self.decision.id,
                policy=self.decision.policy,
                action=self.decision.action,
                automated=self.decision.automated,
                decided_at=_timestamp(self.decision.decided_at),
                non_appealable_reason=self.decision.non_appealable_reason,
                decided_by=self.decision.decided_by,
            ),
            statement=self.statement,
            locale=self.locale,
            country=self.country,
            signals=appeal_pb2.Signals(
                account_reach=signals.account_reach,
                vulnerable_user=signals.vulnerable_user,
                device_hint=signals.device_hint,
                network_hint=signals.network_hint,
                linked_account_hashes=signals.linked_account_hashes,
            ),
            attachments=[appeal_pb2.Attachment(**a.model_dump()) for a in self.attachments],
        )
        if self.decision.notified_at is not None:
            submission.decision.notified_at.CopyFrom(_timestamp(self.decision.notified_at))
        if signals.legal_deadline is not None:
            submission.signals.legal_deadline.CopyFrom(_timestamp(signals.legal_deadline))
        return submission


class InformationIn(_Strict):
    """The appellant's answer to a reviewer's request for more information."""

    answer: str = Field(
        description="What the reviewer asked for, in the appellant's words (not blank)",
        max_length=validation.MAX_STATEMENT_CHARS, pattern=r"\S",
    )  # fmt: skip
    attachments: list[AttachmentIn] = Field(
        default_factory=list, max_length=attachments.MAX_ATTACHMENTS
    )

    def attachments_proto(self) -> list[appeal_pb2.Attachment]:
        return [appeal_pb2.Attachment(**a.model_dump()) for a in self.attachments]


class ErasureIn(_Strict):
    """The person to forget (GDPR Art. 17): their platform and their user id on it."""

    platform: PlatformName
    user_id: Identifier = Field(description="The appellant's user id on the platform")


class ErasureDone(BaseModel):
    erasure_id: str
    # Appeals of the person whose particulars are erased (0 for a person intake does not know).
    appeals_erased: int
    erased_at: datetime


class ReceivedAppeal(BaseModel):
    appeal_id: str
    received_at: datetime


class ReceivedPage(BaseModel):
    appeals: list[ReceivedAppeal]
    # Pass it as `cursor` for the next page; null when the window is done.
    next_cursor: str | None


class InformationAccepted(BaseModel):
    appeal_id: str
    # The info_requested event the answer belongs to.
    answered_request: str


class AppealAccepted(BaseModel):
    appeal_id: str
    status: str = Field(examples=["received"])


class AppealView(BaseModel):
    """An appeal as intake reports it. Personal fields appear only to callers allowed to read
    the appeal (its platform's surface, ops)."""

    appeal_id: str
    status: Literal[
        "received", "routed", "in_review", "decided", "escalated", "awaiting_information"
    ]
    platform: PlatformName
    appellant: dict[str, Any]
    subject: dict[str, Any]
    decision: dict[str, Any]
    statement: str
    locale: str
    country: str
    received_at: str
    updated_at: str
    queue: str | None
    outcome: str | None
    # While the status is awaiting_information: what the reviewer asks and by when (answer with
    # POST /v1/appeals/{appeal_id}/information).
    information_request: InformationRequestView | None = None
    # The appellant asked to be forgotten: the personal fields above are empty for good.
    erased: bool = False


class InformationRequestView(BaseModel):
    question: str
    respond_by: str | None


def submission_view(submission: appeal_pb2.AppealSubmission) -> dict[str, Any]:
    decision = submission.decision
    return {
        "platform": vocabulary.platform_name(submission.platform),
        "appellant": {"user_id": submission.appellant.user_id},
        "subject": {
            "kind": vocabulary.subject_kind_name(submission.subject.kind),
            "id": submission.subject.id,
            **(
                {"content_date": submission.subject.content_date}
                if submission.subject.content_date
                else {}
            ),
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
        "information_request": _request_view(record) if record.info_request else None,
        "erased": record.erased_at is not None,
    }


def _request_view(record: AppealRecord) -> dict[str, Any]:
    request = record.info_request
    assert request is not None
    respond_by = request.respond_by
    return {
        "question": request.question,
        "respond_by": respond_by.isoformat() if respond_by is not None else None,
    }
