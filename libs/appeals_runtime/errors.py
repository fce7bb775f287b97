"""Typed failures a message handler raises; the consumer runner maps each to a policy."""

from __future__ import annotations

from dataclasses import dataclass


class InvalidMessage(Exception):  # noqa: N818 - reads naturally at raise sites
    """The message violates its contract; retrying cannot help. It goes to the topic's DLQ."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class TransientError(Exception):
    """A dependency is unavailable; the same message is retried with backoff until it succeeds."""


class PublishError(TransientError):
    """The broker did not acknowledge a publish in time; nothing may be reported as accepted."""


class NotFound(Exception):  # noqa: N818
    """The object does not exist (HTTP 404, gRPC NOT_FOUND)."""


class _Explained(Exception):  # noqa: N818
    """An error whose problem+json answer carries a machine-readable code and extra members."""

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        retry_after_s: float | None = None,
        **extra: object,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.retry_after_s = retry_after_s
        self.extra = extra


class Conflict(_Explained):
    """The object's state does not allow this (HTTP 409, gRPC FAILED_PRECONDITION)."""


class Unprocessable(_Explained):
    """Well-formed but cannot be done as asked, e.g. an idempotency key reused with another body
    or an appeal outside its window (HTTP 422, gRPC FAILED_PRECONDITION)."""


class TooManyRequests(_Explained):
    """A rate limit is exhausted (HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED)."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request: where (dotted path) and why."""

    field: str
    description: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "description": self.description}


class ValidationFailed(Exception):  # noqa: N818
    """The request is malformed; ``violations`` names every invalid field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations
