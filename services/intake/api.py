"""REST adapter of intake: HTTP in, the same submit path as gRPC and Kafka out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from appeals.v1 import appeal_pb2
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.errors import FieldViolation, ValidationFailed
from appeals_runtime.http import (
    TELEMETRY,
    Caller,
    ReadinessCheck,
    health_router,
    install_problem_handlers,
    problem,
)
from services.intake import openapi_docs
from services.intake.appeals import AppealIntake
from services.intake.schemas import AppealAccepted, AppealIn, AppealView, appeal_view

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Required. The same key with the same body replays the first answer.",
        examples=["9f1c4d2a-7b3e-4e8f-a1c6-2d5e8b9f0a13"],
    ),
]


class EvasionIdentifiers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hashes: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-:.=+/]{8,128}$")]] = Field(
        min_length=1, max_length=1000
    )


def _as_proto(body: AppealIn) -> appeal_pb2.AppealSubmission:
    try:
        return body.to_proto()
    except (ValueError, OverflowError) as error:
        # e.g. a date that leaves the representable range once converted to UTC
        raise ValidationFailed(
            [FieldViolation("body", f"cannot be represented: {error}")]
        ) from None


def create_app(
    intake: AppealIntake,
    verifier: TokenVerifier,
    readiness_checks: dict[str, ReadinessCheck],
    *,
    max_body_bytes: int = 64 * 1024,
) -> FastAPI:
    app = FastAPI(
        title="Appeals intake",
        version="1.0",
        summary="Submit and look up appeals against moderation decisions.",
        telemetry=TELEMETRY,
    )
    app.state.verifier = verifier
    install_problem_handlers(app)
    app.include_router(health_router(readiness_checks))

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            return problem(
                413, "Payload too large", f"bodies are limited to {max_body_bytes} bytes"
            )
        if request.method == "POST" and declared is None:
            body = await request.body()  # chunked: read (bounded by the server) and measure
            if len(body) > max_body_bytes:
                return problem(
                    413, "Payload too large", f"bodies are limited to {max_body_bytes} bytes"
                )
        return await call_next(request)

    @app.post(
        "/v1/appeals",
        status_code=202,
        response_model=AppealAccepted,
        responses=openapi_docs.SUBMIT_RESPONSES,
        summary="Submit an appeal",
    )
    async def submit_appeal(
        body: Annotated[AppealIn, Body(examples=[openapi_docs.EXAMPLE_APPEAL])],
        principal: Caller,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        accepted = await intake.submit(
            principal,
            _as_proto(body),
            idempotency_key=idempotency_key,
            key_field="Idempotency-Key",
            channel="rest",
        )
        return JSONResponse(accepted.as_response(), status_code=202)

    @app.get(
        "/v1/appeals/{appeal_id}",
        response_model=AppealView,
        responses=openapi_docs.GET_RESPONSES,
        summary="Look up an appeal and its status",
    )
    async def get_appeal(appeal_id: str, principal: Caller) -> dict[str, Any]:
        return appeal_view(await intake.get(principal, appeal_id))

    @app.post(
        "/v1/ban-evasion/identifiers",
        responses=openapi_docs.EVASION_RESPONSES,
        summary="Record hashed identifiers of accounts removed for ban evasion (ops)",
    )
    async def add_evasion_identifiers(
        body: EvasionIdentifiers, principal: Caller
    ) -> dict[str, int]:
        return {"added": await intake.add_evasion_identifiers(principal, body.hashes)}

    return app
