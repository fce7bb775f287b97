"""Typed failures a message handler raises; the consumer runner maps each to a policy."""

from __future__ import annotations


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
