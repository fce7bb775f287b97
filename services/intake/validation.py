"""What makes an appeal submission valid, whichever way it arrived (REST, gRPC, Kafka).

Pure functions over the protobuf contract; every violation names its field, so REST answers
problem+json with the invalid fields, gRPC answers INVALID_ARGUMENT with BadRequest details and a
Kafka request gets a rejection listing them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Literal, TypeAlias, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf import unknown_fields
from google.protobuf.message import Message

from appeals import platforms, vocabulary
from appeals.attachments import (
    attachment_violations,
)
from appeals.v1 import appeal_pb2
from appeals_runtime.errors import FieldViolation, Unprocessable, ValidationFailed

MAX_STATEMENT_CHARS = 5000
MAX_ID_CHARS = 128
MAX_IDEMPOTENCY_KEY_CHARS = 255
MAX_LINKED_ACCOUNT_HASHES = 20
# Followers or members of the actioned account: beyond any real audience (and within what a
# JSON number carries exactly), so a larger one is a client's mistake.
MAX_ACCOUNT_REACH = 10**15
if TYPE_CHECKING:
    ContactChannel: TypeAlias = str
else:
    # The shared channels and each declared platform's own (appeals.platforms).
    ContactChannel = Literal[
        (*sorted(platforms.SHARED_CHANNELS), *(p.channel for p in platforms.PLATFORMS))
    ]
CONTACT_CHANNELS = frozenset(get_args(ContactChannel))
# Clocks of surfaces drift; a decision "from the future" within this margin is accepted.
CLOCK_SKEW = timedelta(minutes=5)
# The Transparency Database refuses content dates before this.
EARLIEST_CONTENT_DATE = date(2000, 1, 1)

# The rules as patterns: checked here on every channel, and declared in the REST schema
# (schemas.py) from the same strings, so that what the OpenAPI document allows is what intake
# takes.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
SNAKE_CASE_PATTERN = r"^[a-z][a-z0-9_]*$"
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"
HASH_HINT_PATTERN = r"^[A-Za-z0-9_\-:.=+/]{8,128}$"
# No spaces or control characters (spelt out: Python's \s and the schema's differ on some).
EMAIL_PATTERN = r"^[^@\x00-\x20]{1,64}@[^@\x00-\x20]{1,255}\.[^@\x00-\x20]{2,63}$"
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
# The shape of an IANA time zone name; whether this installation knows it is checked apart.
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9][A-Za-z0-9_+\-]*)*$"

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ID = re.compile(ID_PATTERN)
_POLICY = re.compile(SNAKE_CASE_PATTERN)
_LOCALE = re.compile(LOCALE_PATTERN)
_COUNTRY = re.compile(COUNTRY_PATTERN)
_PRINTABLE_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_HASH_HINT = re.compile(HASH_HINT_PATTERN)
_EMAIL = re.compile(EMAIL_PATTERN)
_E164 = re.compile(E164_PATTERN)
_TIME_ZONE = re.compile(TIME_ZONE_PATTERN)


def _check_id(violations: list[FieldViolation], field: str, value: str) -> None:
    if not value:
        violations.append(FieldViolation(field, "is required"))
    elif len(value) > MAX_ID_CHARS:
        violations.append(FieldViolation(field, f"must be at most {MAX_ID_CHARS} characters"))
    elif not _ID.match(value):
        violations.append(
            FieldViolation(field, "may contain only letters, digits and _ . : - (no spaces)")
        )


def submission_violations(
    submission: appeal_pb2.AppealSubmission, *, now: datetime | None = None
) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    if submission.platform not in vocabulary.PLATFORMS.values():
        violations.append(
            FieldViolation("platform", f"must be one of {', '.join(vocabulary.PLATFORMS)}")
        )
    _check_id(violations, "appellant.user_id", submission.appellant.user_id)
    if submission.subject.kind not in vocabulary.SUBJECT_KINDS.values():
        violations.append(
            FieldViolation("subject.kind", f"must be one of {', '.join(vocabulary.SUBJECT_KINDS)}")
        )
    _check_id(violations, "subject.id", submission.subject.id)
    if submission.subject.content_date and not _ISO_DATE.match(submission.subject.content_date):
        violations.append(FieldViolation("subject.content_date", "must be a date, YYYY-MM-DD"))
    _check_id(violations, "decision.id", submission.decision.id)
    # Who decided (a reviewer's id or a classifier's name): routing never lets the same person
    # review their own decision, which it can only check when it is known (DSA Art. 20(6)).
    _check_id(violations, "decision.decided_by", submission.decision.decided_by)
    if not _POLICY.match(submission.decision.policy):
        violations.append(
            FieldViolation("decision.policy", "is required, in snake_case (e.g. hate_speech)")
        )
    if not _POLICY.match(submission.decision.action):
        violations.append(
            FieldViolation("decision.action", "is required, in snake_case (e.g. removed)")
        )
    if not submission.decision.HasField("decided_at"):
        violations.append(FieldViolation("decision.decided_at", "is required"))
    if len(submission.statement) > MAX_STATEMENT_CHARS:
        violations.append(
            FieldViolation("statement", f"must be at most {MAX_STATEMENT_CHARS} characters")
        )
    if not _LOCALE.match(submission.locale):
        violations.append(FieldViolation("locale", "must be a BCP 47 language tag (e.g. de-DE)"))
    if not _COUNTRY.match(submission.country):
        violations.append(
            FieldViolation("country", "must be an ISO 3166-1 alpha-2 code in capitals (e.g. DE)")
        )
    _check_contact(violations, submission.appellant.contact)
    _check_signals(violations, submission.signals)
    _check_attachments(violations, submission.attachments)
    violations.extend(unknown_field_violations(submission))
    return violations


def implausibilities(
    submission: appeal_pb2.AppealSubmission, *, now: datetime | None = None
) -> list[FieldViolation]:
    """Well-formed values that cannot be true or cannot be used: a decision from the future, a
    content date after the decision, a time zone this installation does not know. (Answered
    422, not 400: the request is what the schema describes; the world disagrees with it.)"""
    now = now or datetime.now(UTC)
    found: list[FieldViolation] = []
    decision = submission.decision
    for name in ("decided_at", "notified_at"):
        if decision.HasField(name):
            moment = getattr(decision, name).ToDatetime(tzinfo=UTC)
            if moment > now + CLOCK_SKEW:
                found.append(FieldViolation(f"decision.{name}", "lies in the future"))
    _check_content_date(found, submission, now)
    zone = submission.appellant.contact.time_zone
    if zone and _TIME_ZONE.match(zone):
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            found.append(FieldViolation("appellant.contact.time_zone", "is not a known time zone"))
    return found


def ensure_plausible(violations: list[FieldViolation]) -> None:
    if violations:
        raise Unprocessable(
            "; ".join(f"{v.field}: {v.description}" for v in violations), code="implausible_values"
        )


def _check_content_date(
    violations: list[FieldViolation], submission: appeal_pb2.AppealSubmission, now: datetime
) -> None:
    text = submission.subject.content_date
    if not text or not _ISO_DATE.match(text):
        return  # absent, or malformed (a 400 of its own)
    try:
        posted = date.fromisoformat(text)
    except ValueError:
        violations.append(FieldViolation("subject.content_date", "is not a calendar date"))
        return
    decision = submission.decision
    latest = (
        decision.decided_at.ToDatetime(tzinfo=UTC) if decision.HasField("decided_at") else now
    ).date() + timedelta(days=1)  # a day's grace: the surface's date may be a local one
    if posted > latest:
        violations.append(
            FieldViolation("subject.content_date", "lies after the decision about the content")
        )
    elif posted < EARLIEST_CONTENT_DATE:
        violations.append(
            FieldViolation("subject.content_date", f"lies before {EARLIEST_CONTENT_DATE}")
        )


def _check_contact(violations: list[FieldViolation], contact: appeal_pb2.Contact) -> None:
    if contact.email and not _EMAIL.match(contact.email):
        violations.append(FieldViolation("appellant.contact.email", "is not an email address"))
    if contact.phone and not _E164.match(contact.phone):
        violations.append(
            FieldViolation("appellant.contact.phone", "must be E.164, e.g. +4915112345678")
        )
    if contact.preferred_channel and contact.preferred_channel not in CONTACT_CHANNELS:
        violations.append(
            FieldViolation(
                "appellant.contact.preferred_channel",
                f"must be one of {', '.join(sorted(CONTACT_CHANNELS))}",
            )
        )
    if contact.time_zone and not _TIME_ZONE.match(contact.time_zone):
        violations.append(
            FieldViolation("appellant.contact.time_zone", "is not an IANA time zone name")
        )


def _check_signals(violations: list[FieldViolation], signals: appeal_pb2.Signals) -> None:
    if not 0 <= signals.account_reach <= MAX_ACCOUNT_REACH:
        violations.append(
            FieldViolation("signals.account_reach", f"must be 0 to {MAX_ACCOUNT_REACH}")
        )
    for name in ("device_hint", "network_hint"):
        value = getattr(signals, name)
        if value and not _HASH_HINT.match(value):
            violations.append(
                FieldViolation(f"signals.{name}", "must be an opaque hash of 8-128 characters")
            )
    if len(signals.linked_account_hashes) > MAX_LINKED_ACCOUNT_HASHES:
        violations.append(
            FieldViolation(
                "signals.linked_account_hashes", f"at most {MAX_LINKED_ACCOUNT_HASHES} entries"
            )
        )
    for index, value in enumerate(signals.linked_account_hashes):
        if not _HASH_HINT.match(value):
            violations.append(
                FieldViolation(
                    f"signals.linked_account_hashes[{index}]",
                    "must be an opaque hash of 8-128 characters",
                )
            )


def erasure_violations(platform: str, user_id: str) -> list[FieldViolation]:
    """Who is to be forgotten: a platform and a user id by the submit's rules."""
    violations: list[FieldViolation] = []
    if platform not in vocabulary.PLATFORMS:
        violations.append(
            FieldViolation("platform", f"must be one of {', '.join(vocabulary.PLATFORMS)}")
        )
    _check_id(violations, "user_id", user_id)
    return violations


def information_violations(
    answer: str, attachments: Sequence[appeal_pb2.Attachment]
) -> list[FieldViolation]:
    """An appellant's answer to a request for information: text within the statement's limit,
    attachments by the submit's rules."""
    violations: list[FieldViolation] = []
    if not answer.strip():
        violations.append(FieldViolation("answer", "is required"))
    elif len(answer) > MAX_STATEMENT_CHARS:
        violations.append(
            FieldViolation("answer", f"must be at most {MAX_STATEMENT_CHARS} characters")
        )
    _check_attachments(violations, attachments)
    return violations


def _check_attachments(
    violations: list[FieldViolation], attachments: Sequence[appeal_pb2.Attachment]
) -> None:
    # The one rule for attachments wherever a person attaches them (live help's chats too).
    violations += [FieldViolation(*violation) for violation in attachment_violations(attachments)]


def evasion_hash_violations(field: str, hashes: Sequence[str]) -> list[FieldViolation]:
    if not 1 <= len(hashes) <= 1000:
        return [FieldViolation(field, "between 1 and 1000 hashes")]
    return [
        FieldViolation(f"{field}[{index}]", "must be an opaque hash of 8-128 characters")
        for index, value in enumerate(hashes)
        if not _HASH_HINT.match(value)
    ]


def unknown_field_violations(message: Message, path: str = "") -> list[FieldViolation]:
    """The one rule for unknown fields, on every channel: they are rejected, by field number.

    REST rejects unknown JSON members the same way (the request model forbids extras), so a
    client that sends a field intake does not know (say, ``status`` or ``priority``) learns it
    was not taken rather than having it silently ignored.
    """
    unknown = unknown_fields.UnknownFieldSet(message)
    found = [
        FieldViolation(f"{path}#{number}" if path else f"#{number}",
                       "is not a field of this contract version")
        for number in sorted({unknown[i].field_number for i in range(len(unknown))})
    ]  # fmt: skip
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        child = f"{path}.{descriptor.name}" if path else descriptor.name
        if descriptor.is_repeated:
            for index, item in enumerate(value):
                found.extend(unknown_field_violations(item, f"{child}[{index}]"))
        else:
            found.extend(unknown_field_violations(value, child))
    return found


def idempotency_key_violations(field: str, key: str | None) -> list[FieldViolation]:
    if not key:
        return [FieldViolation(field, "is required: it makes retries safe")]
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not _PRINTABLE_KEY.match(key):
        return [
            FieldViolation(
                field, f"must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable characters, no spaces"
            )
        ]
    return []


def ensure_valid(violations: list[FieldViolation]) -> None:
    if violations:
        raise ValidationFailed(violations)
