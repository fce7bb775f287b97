"""REST adapter of intake: HTTP in, the same submit path as gRPC and Kafka out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

from appeals_runtime.auth import TokenVerifier
from appeals_runtime.http import (
    Caller,
    ReadinessCheck,
    health_router,
    install_problem_handlers,
)
from services.intake.appeals import AppealIntake
from services.intake.schemas import AppealAccepted, AppealIn, appeal_view


def create_app(
    intake: AppealIntake, verifier: TokenVerifier, readiness_checks: dict[str, ReadinessCheck]
) -> FastAPI:
    app = FastAPI(title="Appeals intake", version="1.0")
    app.state.verifier = verifier
    install_problem_handlers(app)
    app.include_router(health_router(readiness_checks))

    @app.post("/v1/appeals", status_code=202, response_model=AppealAccepted)
    async def submit_appeal(
        body: AppealIn,
        principal: Caller,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        accepted = await intake.submit(
            principal,
            body.to_proto(),
            idempotency_key=idempotency_key,
            key_field="Idempotency-Key",
            channel="rest",
        )
        return JSONResponse(accepted.as_response(), status_code=202)

    @app.get("/v1/appeals/{appeal_id}")
    async def get_appeal(appeal_id: str, principal: Caller) -> dict[str, Any]:
        return appeal_view(await intake.get(principal, appeal_id))

    return app
