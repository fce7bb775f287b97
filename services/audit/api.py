"""Audit's REST API: trails with proofs, verification, checkpoints, proofs, queries, exports,
reconciliation and crypto-shredding (what ``appeals audit`` calls).

Thin: each route checks the caller, logs the read in the audit log itself (before answering, so
an unlogged read cannot happen), calls the service and shapes JSON. Ops and auditor tokens with
the ``audit:read`` scope read; what changes the log (a checkpoint now, shredding a person's key)
and reconciliation (which reads intake with the caller's token) are ops' alone. Built by
:func:`create_app` so tests build the same app on a test store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from aiokafka.errors import KafkaError
from fastapi import APIRouter, FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from appeals import vocabulary
from appeals_runtime.auth import TokenVerifier, bearer_token
from appeals_runtime.errors import (
    Conflict,
    FieldViolation,
    NotFound,
    TransientError,
    ValidationFailed,
)
from appeals_runtime.http import (
    TELEMETRY,
    health_router,
    install_problem_handlers,
)
from appeals_runtime.readiness import ReadinessCheck
from services.audit.callers import Caller, Operator
from services.audit.exports import complaints_report, sources, transparency
from services.audit.exports.acknowledgements import ReconciliationSources
from services.audit.exports.reconciliation import Window
from services.audit.log.entries import rfc3339
from services.audit.log.integrity import IntegrityError
from services.audit.service import AuditService, Trail

MAX_PAGE = 500


def _trail(trail: Trail) -> dict[str, Any]:
    checkpoint = trail.checkpoint
    return {
        "appeal_id": trail.appeal_id,
        "tree_size": checkpoint.size if checkpoint else 0,
        "checkpoint": checkpoint.note if checkpoint else None,
        # What the log knows of the appeal so far (the ops page's search shows it).
        "summary": _appeal(trail.summary) if trail.summary else None,
        "entries": [
            {
                "index": entry.document["index"],
                "event_id": entry.document["event_id"],
                "type": entry.document["type"],
                "occurred_at": rfc3339(entry.document["occurred_at"]),
                "recorded_at": rfc3339(entry.document["recorded_at"]),
                "producer": entry.document["producer"],
                "leaf_hash": entry.document["leaf_hash"],
                "trace_id": entry.trace_id,
                "audit_path": (
                    None if entry.audit_path is None else [h.hex() for h in entry.audit_path]
                ),
            }
            for entry in trail.entries
        ],
    }


def _appeal(document: Mapping[str, Any]) -> dict[str, Any]:
    def moment(name: str) -> str | None:
        value = document.get(name)
        return rfc3339(value) if value is not None else None

    return {
        "appeal_id": document["appeal_id"],
        "first_index": document["first_index"],
        "platform": document.get("platform"),
        "queues": document.get("queues", []),
        "outcome": document.get("outcome"),
        "submitted_at": moment("submitted_at"),
        "decided_at": moment("decided_at"),
        "trail": f"/v1/appeals/{document['appeal_id']}/trail",
    }


class ErasureIn(BaseModel):
    """Whose data key to shred: a pseudonym, or a platform and user id (pseudonymised here)."""

    model_config = ConfigDict(extra="forbid")

    # A subject as the log names it: audit's own pseudonym of a user (ps_…), of an appeal that
    # names no user (pa_…), or the one intake gave the appellant (psn_…).
    pseudonym: str | None = Field(default=None, pattern=r"^[a-z]{1,8}_[A-Za-z0-9_-]{8,128}$")
    platform: str | None = None
    user_id: str | None = Field(default=None, min_length=1, max_length=128)


def audit_router(service: AuditService) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/v1/appeals/{appeal_id}/trail")
    async def trail(appeal_id: str, caller: Caller) -> dict[str, Any]:
        await service.log_access(caller, "trail", appeal_id)
        return _trail(await service.trail(appeal_id))

    @router.get("/v1/audit/verify")
    async def verify(caller: Caller) -> dict[str, Any]:
        await service.log_access(caller, "verify", "log")
        return dataclasses.asdict(await service.integrity.verify())

    @router.get("/v1/audit/key")
    async def key(_: Caller) -> dict[str, str]:
        return {"origin": service.integrity.origin, "verifier_key": service.integrity.verifier_key}

    @router.get("/v1/audit/checkpoints/latest", response_class=PlainTextResponse)
    async def latest_checkpoint(caller: Caller) -> str:
        await service.log_access(caller, "checkpoint", "latest")
        latest = await service.integrity.latest()
        if latest is None:
            raise NotFound("no checkpoint has been signed yet")
        return latest.note

    @router.post("/v1/audit/checkpoints")
    async def make_checkpoint(caller: Operator) -> dict[str, Any]:
        await service.log_access(caller, "sign checkpoint", "log")
        try:
            signed = await service.integrity.checkpoint()
        except IntegrityError as error:
            raise Conflict(str(error), code="log_integrity") from error
        return {"tree_size": signed.size, "root_hash": signed.root.hex(), "note": signed.note}

    @router.get("/v1/audit/proofs/inclusion")
    async def inclusion(
        caller: Caller,
        index: Annotated[int | None, Query(ge=0)] = None,
        event_id: str | None = None,
        tree_size: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        if (index is None) == (event_id is None):
            raise ValidationFailed(
                [FieldViolation("index", "name exactly one entry: ?index=N or ?event_id=ID")]
            )
        await service.log_access(
            caller, "inclusion proof", str(event_id or index), tree_size=tree_size
        )
        try:
            return await service.inclusion_bundle(
                index=index, event_id=event_id, tree_size=tree_size
            )
        except IntegrityError as error:
            raise Conflict(str(error), code="log_integrity") from error

    @router.get("/v1/audit/proofs/consistency")
    async def consistency(
        caller: Caller,
        first: Annotated[int, Query(ge=1)],
        second: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        await service.log_access(caller, "consistency proof", f"{first}..{second or 'latest'}")
        return await service.consistency_bundle(first, second)

    @router.get("/v1/audit/appeals")
    async def appeals(
        caller: Caller,
        platform: str | None = None,
        queue: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: Annotated[int | None, Query(ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        filters = {"platform": platform, "queue": queue, "outcome": outcome}
        await service.log_access(
            caller, "query appeals", "appeals", since=_text(since), until=_text(until), **filters
        )
        page = await service.log.query_appeals(
            **filters, since=since, until=until, after=cursor, limit=limit
        )
        # A page may hold fewer than `limit` appeals and still have a cursor: each request walks
        # a bounded stretch of the log (see the README); null means the end of the log.
        return {
            "appeals": [_appeal(document) for document in page.appeals],
            "next_cursor": page.next_cursor,
        }

    @router.get("/v1/audit/exports/statements-of-reasons")
    async def statements_of_reasons(
        caller: Caller,
        since: datetime,
        until: datetime,
        platform: str | None = None,
    ) -> dict[str, Any]:
        await service.log_access(
            caller, "export statements of reasons", platform or "all",
            since=_text(since), until=_text(until),
        )  # fmt: skip
        decided = await _exported(
            sources.decided_appeals(service.log, since, until, platform=platform)
        )
        return {"batches": list(transparency.batches(decided))}

    @router.get("/v1/audit/reports/complaint-handling")
    async def complaint_handling(
        caller: Caller,
        month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")],
        format: Literal["json", "csv"] = "json",
    ) -> Response:
        await service.log_access(caller, "complaint-handling report", month)
        received, decisions = await _exported(sources.report_inputs(service.log, month))
        rows = complaints_report.monthly_report(received, decisions, month=month)
        if format == "csv":
            return PlainTextResponse(complaints_report.to_csv(rows), media_type="text/csv")
        return JSONResponse({"month": month, "platforms": rows})

    return router


def operations_router(service: AuditService, reconciliation: ReconciliationSources) -> APIRouter:
    """What only ops do: reconcile the log with intake, shred a person's key."""
    router = APIRouter(tags=["audit"])

    @router.get("/v1/audit/reconciliation")
    async def reconcile(
        caller: Operator,
        since: AwareDatetime,
        until: AwareDatetime,
        authorization: Annotated[str | None, Header()] = None,
        intake: bool = True,
    ) -> dict[str, Any]:
        """Intake's acknowledgements against the log: what is missing from the log, what the log
        holds that nobody acknowledged. Read from the topics and, unless ``intake=false`` (or no
        ``AUDIT_INTAKE_URL``), from intake's records with the caller's own token (ops)."""
        if until <= since:
            raise ValidationFailed([FieldViolation("until", "must be after since")])
        window = Window(since, until)
        await service.log_access(
            caller, "reconcile", f"{window.since}..{window.until}", intake=intake
        )
        token = bearer_token(authorization) if intake else None
        acknowledgements, lookup = reconciliation.for_caller(token, with_intake=intake)
        try:
            result = await service.reconcile(window, acknowledgements, intake=lookup)
        except httpx.HTTPStatusError as error:
            # Intake refused or failed the read: a bad gateway, not something to retry blindly.
            raise HTTPException(
                502,
                f"intake answered {error.response.status_code} to the reconciliation's read "
                f"of its records ({error.request.url.path})",
            ) from error
        except (httpx.TransportError, KafkaError) as error:
            raise TransientError(f"reconciliation could not read its sources: {error}") from error
        return {"ok": result.ok, **dataclasses.asdict(result)}

    @router.post("/v1/audit/erasures")
    async def forget(request: ErasureIn, caller: Operator) -> dict[str, Any]:
        """Crypto-shred one person's personal data in the log (their data key); idempotent, and
        itself logged (an ``erasure`` entry naming only the pseudonym)."""
        by_user = request.platform is not None or request.user_id is not None
        if (request.pseudonym is None) == (not by_user):
            raise ValidationFailed(
                [FieldViolation("pseudonym", "give a pseudonym, or a platform and a user_id")]
            )
        if request.pseudonym is not None:
            subject = request.pseudonym
            shredded = await service.forget(subject, caller)
        else:
            if request.platform not in vocabulary.PLATFORMS or not request.user_id:
                raise ValidationFailed(
                    [FieldViolation("platform", "a declared platform, with the user_id")]
                )
            subject, shredded = await service.forget_user(
                vocabulary.PLATFORMS[request.platform], request.user_id, caller
            )
        return {"pseudonym": subject, "shredded": shredded}

    return router


async def _exported(work: Any) -> Any:
    try:
        return await work
    except IntegrityError as error:
        raise Conflict(str(error), code="log_integrity") from error


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def create_app(
    service: AuditService,
    tokens: TokenVerifier,
    *,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    reconciliation: ReconciliationSources | None = None,
) -> FastAPI:
    app = FastAPI(title="appeals audit", telemetry=TELEMETRY)
    install_problem_handlers(app)
    app.include_router(health_router(readiness_checks or {}))
    app.state.verifier = tokens
    app.include_router(audit_router(service))
    # Without sources (a test's app on a bare store) there is nothing to reconcile against.
    if reconciliation is not None:
        app.include_router(operations_router(service, reconciliation))
    return app
