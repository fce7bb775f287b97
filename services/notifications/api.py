"""HTTP API: what each appellant was told, for ops. Thin: auth, one repository read, JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path
from pydantic import BaseModel

from appeals_runtime.auth import Principal, Role, Scope, TokenVerifier
from appeals_runtime.errors import NotFound
from appeals_runtime.http import (
    TELEMETRY,
    Caller,
    health_router,
    install_problem_handlers,
)
from appeals_runtime.readiness import ReadinessCheck
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


def create_app(
    repository: NotificationsRepository,
    verifier: TokenVerifier,
    *,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
) -> FastAPI:
    app = FastAPI(title="appeals notifications", telemetry=TELEMETRY)
    app.state.verifier = verifier
    install_problem_handlers(app)
    app.include_router(health_router(readiness_checks or {}))
    app.include_router(notifications_router(repository))
    return app


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
