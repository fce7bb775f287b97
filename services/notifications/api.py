"""HTTP API: what each appellant was told, for ops; verification codes sent for the live-help
service. Thin: auth, one use-case call, JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from appeals import platforms
from appeals_runtime.auth import Principal, Role, Scope, TokenVerifier
from appeals_runtime.errors import NotFound
from appeals_runtime.http import (
    TELEMETRY,
    Caller,
    health_router,
    install_problem_handlers,
)
from appeals_runtime.readiness import ReadinessCheck
from services.notifications.codes import CodeRequest, CodeSender
from services.notifications.model import Delivery
from services.notifications.repository import NotificationsRepository


class NotificationView(BaseModel):
    about_event_id: str
    kind: str
    channel: str
    platform: str
    locale: str
    recipient: str
    subject: str
    body: str
    delivered_at: datetime

    @classmethod
    def of(cls, delivery: Delivery) -> NotificationView:
        return cls(
            about_event_id=delivery.about_event_id,
            kind=delivery.kind,
            channel=delivery.channel,
            platform=delivery.platform,
            locale=delivery.locale,
            recipient=delivery.recipient,
            subject=delivery.subject,
            body=delivery.body,
            delivered_at=delivery.delivered_at,
        )


class AppealNotifications(BaseModel):
    appeal_id: str
    # Oldest first.
    notifications: list[NotificationView]


class CodeAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # user_id: the platform's own channel; phone (E.164): WhatsApp; email.
    kind: Literal["user_id", "phone", "email"]
    address: str = Field(min_length=3, max_length=320)


class CodeRequestIn(BaseModel):
    """A code to send to an account's contact on file (the sender looked the account up)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    platform: str
    locale: str = Field(default="en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$")
    to: CodeAddress
    code: str = Field(pattern=r"^[0-9]{6,8}$")
    expires_at: AwareDatetime

    @field_validator("platform")
    @classmethod
    def _declared_platform(cls, value: str) -> str:
        if value not in platforms.NAMES:
            raise ValueError(f"must be one of {', '.join(platforms.NAMES)}")
        return value


class CodeSentView(BaseModel):
    request_id: str
    channel: str
    # True when this request id had been sent before: nothing went out this time.
    repeated: bool


def create_app(
    repository: NotificationsRepository,
    verifier: TokenVerifier,
    *,
    codes: CodeSender | None = None,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
) -> FastAPI:
    app = FastAPI(title="appeals notifications", telemetry=TELEMETRY)
    app.state.verifier = verifier
    install_problem_handlers(app)
    app.include_router(health_router(readiness_checks or {}))
    app.include_router(notifications_router(repository))
    if codes is not None:
        app.include_router(codes_router(codes))
    return app


async def code_sender_principal(principal: Caller) -> Principal:
    # Only the pipeline's own live-help service, with the scope for it.
    principal.require(Scope.SEND_CODES, role=Role.SERVICE)
    return principal


def codes_router(codes: CodeSender) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["verification codes"])

    @router.post("/verification-codes", dependencies=[Depends(code_sender_principal)])
    async def send_code(request: CodeRequestIn) -> CodeSentView:
        """Send a one-time code to the named contact on file, once per ``request_id``."""
        sent = await codes.send(
            CodeRequest(
                request_id=request.request_id,
                platform=request.platform,
                locale=request.locale,
                kind=request.to.kind,
                address=request.to.address,
                code=request.code,
                expires_at=request.expires_at,
            )
        )
        return CodeSentView(
            request_id=sent.request_id, channel=sent.channel, repeated=sent.repeated
        )

    return router


async def ops_principal(principal: Caller) -> Principal:
    # Messages are about a person's content and its review: ops only.
    principal.require(Scope.READ, role=Role.OPS)
    return principal


def notifications_router(repository: NotificationsRepository) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["notifications"])

    # A dependency of the route, not a parameter: the handler never needs the principal.
    @router.get("/appeals/{appeal_id}/notifications", dependencies=[Depends(ops_principal)])
    async def appeal_notifications(
        appeal_id: Annotated[str, Path(min_length=1, max_length=128)],
    ) -> AppealNotifications:
        deliveries = await repository.notifications_of(appeal_id)
        # Tell "nothing sent yet" (200, empty) from "no such appeal here" (404).
        if deliveries is None:
            raise NotFound(f"notifications knows no appeal {appeal_id!r}")
        return AppealNotifications(
            appeal_id=appeal_id,
            notifications=[NotificationView.of(delivery) for delivery in deliveries],
        )

    return router
