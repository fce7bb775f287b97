"""What makes an appeal submission valid, whichever way it arrived (REST, gRPC, Kafka).

Pure functions over the protobuf contract; every violation names its field, so REST answers
problem+json with the invalid fields, gRPC answers INVALID_ARGUMENT with BadRequest details and a
Kafka request gets a rejection listing them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from appeals.v1 import appeal_pb2
from appeals_runtime import vocabulary
from appeals_runtime.errors import FieldViolation, ValidationFailed

MAX_STATEMENT_CHARS = 5000
MAX_ID_CHARS = 128
MAX_IDEMPOTENCY_KEY_CHARS = 255
# Clocks of surfaces drift; a decision "from the future" within this margin is accepted.
CLOCK_SKEW = timedelta(minutes=5)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
_POLICY = re.compile(r"^[a-z][a-z0-9_]*$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PRINTABLE_KEY = re.compile(r"^[\x21-\x7e]+$")


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
    _check_id(violations, "decision.id", submission.decision.id)
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
    else:
        decided_at = submission.decision.decided_at.ToDatetime(tzinfo=UTC)
        if decided_at > (now or datetime.now(UTC)) + CLOCK_SKEW:
            violations.append(FieldViolation("decision.decided_at", "lies in the future"))
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
    return violations


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
