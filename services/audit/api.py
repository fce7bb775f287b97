"""Audit's REST API: an appeal's trail and a verification of the whole log, for ops only.

Built by :func:`create_app` from its dependencies so tests build the same app on a test store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header

from appeals_runtime.auth import Principal, Role, Scope, TokenVerifier
from appeals_runtime.errors import NotFound
from appeals_runtime.http import ReadinessCheck, health_router, install_problem_handlers
from services.audit.chain import rfc3339
from services.audit.repository import AuditRepository, TrailEntry


def _trail_entry(entry: TrailEntry) -> dict[str, Any]:
    return {
        "index": entry.index,
        "event_id": entry.event_id,
        "type": entry.type,
        "occurred_at": rfc3339(entry.occurred_at),
        "recorded_at": rfc3339(entry.recorded_at),
        "producer": entry.producer,
        "hash": entry.hash,
    }


def audit_router(repository: AuditRepository, tokens: TokenVerifier) -> APIRouter:
    async def auditor(authorization: Annotated[str | None, Header()] = None) -> Principal:
        principal = tokens.verify_header(authorization)
        principal.require(Scope.READ_AUDIT, role=Role.OPS)
        return principal

    router = APIRouter(tags=["audit"], dependencies=[Depends(auditor)])

    @router.get("/v1/appeals/{appeal_id}/trail")
    async def trail(appeal_id: str) -> dict[str, Any]:
        entries = await repository.trail(appeal_id)
        if not entries:
            raise NotFound(f"the audit log has no entries for appeal {appeal_id!r}")
        return {"appeal_id": appeal_id, "entries": [_trail_entry(e) for e in entries]}

    @router.get("/v1/audit/verify")
    async def verify() -> dict[str, Any]:
        return dataclasses.asdict(await repository.verify())

    return router


def create_app(
    repository: AuditRepository,
    tokens: TokenVerifier,
    *,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
) -> FastAPI:
    app = FastAPI(title="appeals audit")
    install_problem_handlers(app)
    app.include_router(health_router(readiness_checks or {}))
    app.include_router(audit_router(repository, tokens))
    return app
