"""Reconciliation: every appeal intake acknowledged is in the log, and only those. Pure.

Intake acknowledges an appeal by publishing its ``submitted`` event (and, for requests that came
over Kafka, an accepted request outcome) before it answers the surface. Where the list of
acknowledged appeals comes from is an :class:`AcknowledgementSource` (see acknowledgements.py);
this module only compares. Differences are reported by appeal id:

* ``missing_from_log``: acknowledged in the window, but the log has no submitted entry for it
  (lost by the consumer, dead-lettered, or deleted from the store);
* ``not_acknowledged``: the log's submitted entry falls in the window, but no source knows of
  the appeal (fabricated, or its acknowledgement is outside what the source retains);
* ``without_submitted``: the log holds events of an appeal in the window but no submitted entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.since <= moment < self.until


@dataclass(frozen=True)
class Acknowledged:
    appeal_id: str
    at: datetime
    # Where we learnt of it: "submitted event", "request outcome", "intake".
    via: str


@dataclass(frozen=True)
class LoggedAppeal:
    appeal_id: str
    # The submitted entry's time; None when the log holds other events of the appeal only.
    submitted_at: datetime | None
    first_seen: datetime


class AcknowledgementSource(Protocol):
    async def acknowledged(self, window: Window) -> list[Acknowledged]:
        """Appeals acknowledged in ``window`` (a source may return more; extras are fine)."""
        ...


@dataclass(frozen=True)
class Reconciliation:
    since: datetime
    until: datetime
    acknowledged: int
    logged: int
    missing_from_log: list[str] = field(default_factory=list)
    not_acknowledged: list[str] = field(default_factory=list)
    without_submitted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing_from_log or self.not_acknowledged or self.without_submitted)


def reconcile(
    acknowledged: Iterable[Acknowledged], logged: Iterable[LoggedAppeal], window: Window
) -> Reconciliation:
    acks = {ack.appeal_id: ack for ack in acknowledged}
    log = {appeal.appeal_id: appeal for appeal in logged}
    acked_in_window = {appeal_id for appeal_id, ack in acks.items() if ack.at in window}
    logged_in_window = {
        appeal_id for appeal_id, appeal in log.items() if appeal.submitted_at in window
    }
    submitted_anywhere = {a.appeal_id for a in log.values() if a.submitted_at is not None}
    return Reconciliation(
        since=window.since,
        until=window.until,
        acknowledged=len(acked_in_window),
        logged=len(logged_in_window),
        missing_from_log=sorted(acked_in_window - submitted_anywhere),
        not_acknowledged=sorted(logged_in_window - set(acks)),
        without_submitted=sorted(
            appeal_id
            for appeal_id, appeal in log.items()
            if appeal.submitted_at is None and appeal.first_seen in window
        ),
    )
