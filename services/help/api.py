"""Live help's HTTP API and the person's page: public, no platform login.

``GET /help`` is the page (HTML, JS, CSS from ``page/``; no data, strict CSP). The API:

* ``POST /v1/help/verifications`` ``{platform, account}`` → 202 ``{verification_id, expires_at,
  message}``, the same answer whether or not the account exists (the code, if any, goes to the
  contact on file after the answer);
* ``POST /v1/help/verifications/{id}/check`` ``{code}`` → 200 ``{session_token, expires_at,
  platform}``; a wrong code and an unknown account are both 422 ``code_rejected`` with the tries
  left; 422 ``code_expired`` / ``attempts_exhausted`` / ``code_used`` ask for a new code;
* ``GET /v1/help/session`` with the session token as a bearer token → the session (401 once
  it has expired, however often it is replayed);
* live chat (:mod:`services.help.chat_api`): the person's ``/v1/help/chats...`` routes and
  WebSocket, and routing's ``/internal/v1/chats...`` relay, when chats are wired in.

Errors are RFC 9457 problem documents; limits answer 429 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, FastAPI, Header, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from appeals import platforms
from appeals_runtime.auth import TokenVerifier, bearer_token
from appeals_runtime.http import TELEMETRY, health_router, install_problem_handlers, page_router
from appeals_runtime.readiness import ReadinessCheck
from services.help.chat_api import internal_router, person_router
from services.help.chats import Chats
from services.help.service import Verifications

VerificationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,64}$")]

# Said whether or not the account exists.
SENT_IF_EXISTS = (
    "If this account exists, a code is on its way to the contact the platform has on file for "
    "it. It works once, until it expires."
)


class VerificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(min_length=1, max_length=32)
    # A handle, or the phone number or email address on file.
    account: str = Field(min_length=1, max_length=320)


class VerificationStarted(BaseModel):
    verification_id: str
    expires_at: datetime
    message: str


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^\s*[0-9]{6}\s*$")


class SessionOut(BaseModel):
    session_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme's name, not a secret
    expires_at: datetime
    platform: str


class SessionView(BaseModel):
    platform: str
    expires_at: datetime


def _client(request: Request) -> str:
    # The peer as the server sees it; behind a proxy, deploy with uvicorn's --proxy-headers
    # and a trusted-proxy list so this is the person's address, never a header they wrote.
    return request.client.host if request.client else "unknown"


def help_router(verifications: Verifications) -> APIRouter:
    router = APIRouter(tags=["live help"])
    router.include_router(page_router("/help", "services.help", "page", "the help page"))

    @router.get("/v1/help/platforms")
    async def help_platforms() -> list[dict[str, str]]:
        """The platforms whose accounts live help serves, with their display names."""
        return [{"name": p.name, "display_name": p.display_name} for p in platforms.PLATFORMS]

    @router.post("/v1/help/verifications", status_code=202)
    async def start_verification(
        body: VerificationIn, request: Request, background: BackgroundTasks
    ) -> VerificationStarted:
        """Ask for a code to the account's contact on file (same answer for every account)."""
        started = await verifications.start(body.platform, body.account, _client(request))
        background.add_task(verifications.deliver, started)
        return VerificationStarted(
            verification_id=started.verification_id,
            expires_at=started.expires_at,
            message=SENT_IF_EXISTS,
        )

    @router.post("/v1/help/verifications/{verification_id}/check")
    async def check_code(
        verification_id: VerificationId, body: CodeIn, request: Request
    ) -> SessionOut:
        """Trade a right code for a help session."""
        token, session = await verifications.check(verification_id, body.code, _client(request))
        return SessionOut(
            session_token=token, expires_at=session.expires_at, platform=session.platform
        )

    @router.get("/v1/help/session")
    async def current_session(
        authorization: Annotated[str | None, Header()] = None,
    ) -> SessionView:
        """The session the bearer token opens."""
        session = verifications.sessions.verify(bearer_token(authorization))
        return SessionView(platform=session.platform, expires_at=session.expires_at)

    return router


def create_app(
    verifications: Verifications,
    *,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    chats: Chats | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    app = FastAPI(title="appeals live help", telemetry=TELEMETRY)
    install_problem_handlers(app)
    app.include_router(health_router(readiness_checks or {}))
    app.include_router(help_router(verifications))
    if chats is not None:
        app.include_router(person_router(chats, verifications.sessions))
        if verifier is not None:
            app.include_router(internal_router(chats, verifier))
    return app
