"""Shared pieces of the audit integration tests (no tests here): the audit log on a test
database, and appeal lifecycles as the services publish them."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from appeals.v1 import appeal_pb2, events_pb2
from appeals_runtime import events, store, topics
from appeals_runtime.privacy import submission_facts
from services.audit import records
from services.audit.config import AuditLogSettings
from services.audit.main import INDEXES, build
from services.audit.privacy import Secrets
from services.audit.service import AuditService
from tests.unit.test_audit_privacy import old_layout


@dataclass
class Audit:
    service: AuditService
    secrets: Secrets
    settings: AuditLogSettings
    db: store.Database


def audit_settings(tmp_path: Path, db: store.Database, **overrides: Any) -> AuditLogSettings:
    return AuditLogSettings(
        mongodb_database=db.name,
        audit_state_dir=tmp_path / "audit-state",
        audit_checkpoint_dir=tmp_path / "checkpoints",
        **overrides,
    )


async def open_audit(db: store.Database, tmp_path: Path) -> Audit:
    await store.ensure_indexes(db, INDEXES)
    settings = audit_settings(tmp_path, db)
    service, secrets = build(db, settings)
    return Audit(service, secrets, settings, db)


def new_appeal_id() -> str:
    return f"ap_{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Case:
    """What a fixture appeal is about and how it ends."""

    platform: int = appeal_pb2.PLATFORM_INSTAGRAM
    kind: int = appeal_pb2.SUBJECT_KIND_POST
    policy: str = "hate_speech"
    action: str = "removed"
    automated: bool = True
    locale: str = "de-DE"
    country: str = "DE"
    queue: str = "instagram.de"
    outcome: int = appeal_pb2.OUTCOME_OVERTURNED
    rationale: str = "A quotation in news reporting."
    user_id: str = "17841400000000001"
    decided_after: timedelta = timedelta(hours=5)
    # Published as intake did before it became the only holder of personal data (the whole
    # submission in the event): how the log's older entries and a not-yet-upgraded producer
    # look, and what audit still seals.
    old_layout: bool = False


def submitted_payload(
    case: Case, submission: appeal_pb2.AppealSubmission
) -> events_pb2.AppealSubmitted:
    if case.old_layout:
        return old_layout(events_pb2.AppealSubmitted(), submission)
    # Today: the facts and intake's pseudonym; the particulars stay in intake.
    return events_pb2.AppealSubmitted(
        facts=submission_facts(submission),
        appellant_pseudonym=f"psn_{case.platform}_{case.user_id}",
    )


def lifecycle(
    appeal_id: str, case: Case = Case(), *, start: datetime | None = None
) -> list[events_pb2.AppealEvent]:
    """submitted → routed → claimed → decided → notified, as the services would publish them."""
    start = start or datetime.now(UTC)
    submission = appeal_pb2.AppealSubmission(
        platform=case.platform,  # type: ignore[arg-type]
        appellant=appeal_pb2.Appellant(
            user_id=case.user_id,
            contact=appeal_pb2.Contact(email=f"{case.user_id}@example.org"),
        ),
        subject=appeal_pb2.Subject(kind=case.kind, id="3141592653589793"),  # type: ignore[arg-type]
        decision=appeal_pb2.OriginalDecision(
            policy=case.policy, action=case.action, automated=case.automated
        ),
        statement=f"Statement of {case.user_id}: this was a quotation.",
        locale=case.locale,
        country=case.country,
    )
    submission.decision.decided_at.FromDatetime(start - timedelta(days=1))
    steps: list[tuple[str, str, Any, timedelta]] = [
        ("intake", "submitted", submitted_payload(case, submission), timedelta(0)),
        (
            "routing",
            "routed",
            events_pb2.AppealRouted(queue=case.queue, platform=case.platform),  # type: ignore[arg-type]
            timedelta(seconds=1),
        ),
        (
            "routing",
            "claimed",
            events_pb2.CaseClaimed(agent_id="agent-7", queue=case.queue),
            timedelta(seconds=2),
        ),
        (
            "routing",
            "decided",
            events_pb2.AppealDecided(
                agent_id="agent-7",
                outcome=case.outcome,  # type: ignore[arg-type]
                rationale=case.rationale,
                platform=case.platform,  # type: ignore[arg-type]
            ),
            case.decided_after,
        ),
        (
            "notifications",
            "notified",
            events_pb2.AppellantNotified(kind="decided"),
            case.decided_after + timedelta(seconds=1),
        ),
    ]
    built: list[events_pb2.AppealEvent] = []
    for producer, field, payload, after in steps:
        built.append(
            events.new_event(
                event_id=events.derived_event_id(appeal_id, field),
                appeal_id=appeal_id,
                producer=producer,
                causation_id=built[-1].event_id if built else "",
                occurred_at=start + after,
                **{field: payload},
            )
        )
    return built


async def record(audit: Audit, *lifecycle_events: events_pb2.AppealEvent) -> None:
    for event in lifecycle_events:
        recorded = records.from_lifecycle_event(
            event, topic=topics.APPEAL_LIFECYCLE.name, secrets=audit.secrets
        )
        await audit.service.record(recorded, records.index_facts(event))


# Watching what the store is asked ---------------------------------------------------------------


@dataclass(frozen=True)
class StoreCommand:
    name: str
    collection: str
    # The filters the command selects documents by (find: one; update and delete: one each).
    filters: list[dict[str, Any]]
    # Documents an insert carries.
    inserted: int = 0


@dataclass
class CommandLog(monitoring.CommandListener):
    """Every command a client sends, as far as the tests need it (what it selects by)."""

    commands: list[StoreCommand] = dataclasses.field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command, name = event.command, event.command_name
        collection = command.get(name)
        filters = {
            "find": lambda: [command.get("filter") or {}],
            "update": lambda: [u.get("q") or {} for u in command.get("updates", [])],
            "delete": lambda: [d.get("q") or {} for d in command.get("deletes", [])],
            "count": lambda: [command.get("query") or {}],
            "distinct": lambda: [command.get("query") or {}],
        }.get(name, list)()
        inserted = len(command.get("documents", [])) if name == "insert" else 0
        self.commands.append(StoreCommand(name, str(collection), filters, inserted))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        self.commands.clear()

    def on(self, collection: str, *names: str) -> list[StoreCommand]:
        return [c for c in self.commands if c.collection == collection and c.name in names]

    def selecting(self) -> Iterator[tuple[StoreCommand, dict[str, Any]]]:
        """Every filter of every command that selects documents (reads, updates, deletes)."""
        for command in self.commands:
            if command.name in ("find", "update", "delete", "count", "distinct", "aggregate"):
                for query in command.filters or [{}]:
                    yield command, query


def names_the_id(query: dict[str, Any]) -> bool:
    """Whether a filter selects by ``_id`` value: what FerretDB answers from its ``_id`` index
    (``{_id: v}`` or ``{_id: {$in: [...]}}``, other conditions beside it allowed)."""
    value = query.get("_id")
    if isinstance(value, (str, ObjectId)):
        return True
    if isinstance(value, dict) and set(value) == {"$in"}:
        return bool(value["$in"]) and all(isinstance(v, (str, ObjectId)) for v in value["$in"])
    return False


def watched_client(url: str) -> tuple[AsyncMongoClient[store.Document], CommandLog]:
    """A store client like the services' whose commands are recorded."""
    commands = CommandLog()
    return AsyncMongoClient(url, tz_aware=True, event_listeners=[commands]), commands
