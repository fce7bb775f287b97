"""Reading the logged events that exports, reports and reconciliation are derived from.

Everything here comes from the log's own entries (never from another service's store), and every
entry used is checked against its leaf hash first: an export must not launder an edited entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from appeals import events, vocabulary
from appeals.v1 import events_pb2
from services.audit.exports.complaints_report import Decision, Received
from services.audit.exports.reconciliation import (
    Acknowledged,
    AcknowledgementSource,
    LoggedAppeal,
    Reconciliation,
    Window,
    reconcile,
)
from services.audit.exports.transparency import DecidedAppeal
from services.audit.log import entries
from services.audit.log.integrity import IntegrityError
from services.audit.log.repository import LogRepository
from services.audit.privacy import legacy


def _event(document: dict[str, Any]) -> events_pb2.AppealEvent:
    if document.get(entries.LEAF_HASH) != entries.entry_leaf_hash(document).hex():
        raise IntegrityError(f"entry {document.get('index')} does not match its leaf hash")
    return events_pb2.AppealEvent.FromString(entries.payload_of(document))


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as [first instant, first instant of the next month) in UTC."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    end = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    return start, end


async def _submitted_of(
    log: LogRepository, appeal_ids: Sequence[str]
) -> dict[str, events_pb2.AppealEvent]:
    if not appeal_ids:
        return {}
    documents = await log.of_type("submitted", appeal_ids=appeal_ids)
    return {document["appeal_id"]: _event(document) for document in documents}


async def decided_appeals(
    log: LogRepository, since: datetime, until: datetime, *, platform: str | None = None
) -> list[DecidedAppeal]:
    """Appeals decided in [since, until) with their submitted event (the last decision counts
    if an appeal was decided twice)."""
    decided: dict[str, events_pb2.AppealEvent] = {}
    for document in await log.of_type("decided", since=since, until=until):
        event = _event(document)
        earlier = decided.get(event.appeal_id)
        if earlier is None or events.occurred_at(earlier) <= events.occurred_at(event):
            decided[event.appeal_id] = event
    submitted = await _submitted_of(log, sorted(decided))
    found = []
    for appeal_id, event in decided.items():
        origin = submitted.get(appeal_id)
        if origin is None:
            continue  # reconciliation reports appeals the log lacks a submission for
        appeal = DecidedAppeal(
            appeal_id=appeal_id,
            submitted=origin.submitted,
            submitted_at=events.occurred_at(origin),
            decided=event.decided,
            decided_at=events.occurred_at(event),
        )
        if platform is None or appeal.platform == platform:
            found.append(appeal)
    return found


async def report_inputs(log: LogRepository, month: str) -> tuple[list[Received], list[Decision]]:
    since, until = month_bounds(month)
    received = []
    for document in await log.of_type("submitted", since=since, until=until):
        event = _event(document)
        submission = legacy.facts_of(event.submitted)
        received.append(
            Received(
                appeal_id=event.appeal_id,
                platform=vocabulary.platform_name(submission.platform),
                at=events.occurred_at(event),
                policy=submission.decision.policy,
            )
        )
    decided = [_event(d) for d in await log.of_type("decided", since=since, until=until)]
    submitted = await _submitted_of(log, sorted({event.appeal_id for event in decided}))
    decisions = []
    for event in decided:
        origin = submitted.get(event.appeal_id)
        platform = event.decided.platform or (
            legacy.facts_of(origin.submitted).platform if origin else 0
        )
        decisions.append(
            Decision(
                appeal_id=event.appeal_id,
                platform=vocabulary.platform_name(platform),
                at=events.occurred_at(event),
                outcome=vocabulary.outcome_name(event.decided.outcome),
                submitted_at=events.occurred_at(origin) if origin else None,
                by_assistant=event.decided.by_assistant,
            )
        )
    return received, decisions


async def logged_appeals(log: LogRepository) -> list[LoggedAppeal]:
    """Every appeal the log holds events of, with its submitted entry's time if it has one."""
    first_seen: dict[str, datetime] = {}
    submitted_at: dict[str, datetime] = {}
    async for document in log.appeal_events():
        appeal_id = document.get("appeal_id")
        at = document.get("occurred_at")
        if not appeal_id or not isinstance(at, datetime):
            continue  # the log's own records (reads, erasures) belong to no appeal
        if appeal_id not in first_seen or at < first_seen[appeal_id]:
            first_seen[appeal_id] = at
        if document.get("type") == "submitted":
            submitted_at[appeal_id] = at
    return [
        LoggedAppeal(appeal_id, submitted_at.get(appeal_id), seen)
        for appeal_id, seen in first_seen.items()
    ]


async def reconcile_log(
    log: LogRepository,
    source: AcknowledgementSource,
    window: Window,
    *,
    intake: Callable[[str], Awaitable[bool]] | None = None,
) -> Reconciliation:
    """Compare the log with ``source``; appeals only the log knows are put to ``intake`` (if
    given), which may still know them after the topics stopped retaining their acknowledgement."""
    acknowledged = await source.acknowledged(window)
    logged = await logged_appeals(log)
    result = reconcile(acknowledged, logged, window)
    if intake is not None and result.not_acknowledged:
        seen = {appeal.appeal_id: appeal for appeal in logged}
        confirmed = [
            Acknowledged(appeal_id, seen[appeal_id].submitted_at or window.since, "intake")
            for appeal_id in result.not_acknowledged
            if await intake(appeal_id)
        ]
        result = reconcile([*acknowledged, *confirmed], logged, window)
    return result
