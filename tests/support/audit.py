"""Shared pieces of the audit tests: the audit log on a test database, its REST API on a real
HTTP server (what the `appeals audit` command talks to), appeal lifecycles as the services
publish them, and events in the layout from before the privacy rule."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from appeals import events, topics
from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack import devkeys
from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from services.audit import api
from services.audit.config import AuditLogSettings, AuditSettings
from services.audit.exports.acknowledgements import ReconciliationSources
from services.audit.log import records
from services.audit.main import INDEXES, build
from services.audit.privacy import legacy
from services.audit.privacy.sealing import Secrets
from services.audit.service import AuditService
from tests.support.http_server import serving

CarrierT = TypeVar("CarrierT", events_pb2.AppealSubmitted, events_pb2.CasePackage)


def old_layout(message: CarrierT, submission: appeal_pb2.AppealSubmission) -> CarrierT:
    """``message`` as written before the privacy rule: the whole submission in field 1."""
    raw = submission.SerializeToString()
    length, size = b"", len(raw)
    while True:  # a protobuf varint
        length += bytes([(size & 0x7F) | (0x80 if size > 0x7F else 0)])
        size >>= 7
        if not size:
            break
    field_1 = bytes([legacy.LEGACY_SUBMISSION_FIELD << 3 | 2]) + length + raw
    return type(message).FromString(field_1 + message.SerializeToString())


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


@dataclass(frozen=True)
class AuditServer:
    """Audit's API served over HTTP: its base URL, and tokens its verifier accepts."""

    base: str
    signing_key: Path

    def token(self, role: str = "ops", subject: str | None = None, **claims: Any) -> str:
        return devkeys.mint_token(self.signing_key, role=role, subject=subject or role, **claims)

    def headers(
        self, role: str = "ops", subject: str | None = None, **claims: Any
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject, **claims)}"}


@contextlib.asynccontextmanager
async def serving_audit(
    audit: Audit, key_dir: Path, bootstrap_servers: str, *, intake_url: str | None = None
) -> AsyncIterator[AuditServer]:
    """The audit service's app over ``audit`` (its real store) on a real HTTP server at a free
    port, trusting the dev key in ``key_dir`` (made there if missing), reconciling against the
    topics on ``bootstrap_servers`` and, with ``intake_url``, intake's records."""
    key, jwks = devkeys.ensure(key_dir)
    app = api.create_app(
        audit.service,
        TokenVerifier.from_settings(AuditSettings(auth_jwks_file=jwks)),
        reconciliation=ReconciliationSources(bootstrap_servers, intake_url),
    )
    async with serving(app) as base:
        yield AuditServer(base, key)


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
