"""``POST /v1/help/erasures``: forget a person's live-help transcripts (GDPR Art. 17).

The body is intake's ``POST /v1/erasures`` body, ``{platform, user_id}``, so whoever erases an
appellant at intake can make the same request here (it covers feature-help chats, which have no
appeal and so are not reached by intake's ``particulars_erased``). Callers as at intake: a
surface for its platforms' users, ops for anyone's (scope ``particulars:erase``); the caller is
checked before the body is read, so anyone else learns nothing about what a valid request looks
like. The answer: 200 ``{forgotten, erased_at}``, ``forgotten`` saying whether the person had a
transcript key (deleted now); 400 naming invalid fields; 401; 403. Errors are RFC 9457 problem
documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field

from appeals_runtime.auth import Principal, Scope, TokenVerifier
from services.help.erasure import MAX_USER_ID_CHARS, ChatErasures

PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid fields (`invalid_params`)", **PROBLEM},
    401: {"description": "No token, or one that does not verify", **PROBLEM},
    403: {"description": "Not ops, nor a surface of the person's platform", **PROBLEM},
}


class ErasureIn(BaseModel):
    """The person to forget: their platform and their user id on it."""

    model_config = ConfigDict(extra="forbid")

    platform: str = Field(max_length=32, examples=["instagram"])
    user_id: str = Field(max_length=MAX_USER_ID_CHARS, examples=["17841400000000001"])


class ErasureDone(BaseModel):
    # Whether the person had a live-help transcript key, deleted now: their transcripts read
    # "[erased]" from now on. False for a person live help does not know or forgot already.
    forgotten: bool
    erased_at: datetime


def erasure_router(erasures: ChatErasures, verifier: TokenVerifier) -> APIRouter:
    async def eraser(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> None:
        # A dependency of the route: the caller is checked before the body is (401, then 403,
        # before any 400). Async, as FastAPI hands a plain def to a worker thread.
        principal = verifier.verify_header(authorization)
        principal.require(Scope.ERASE_PARTICULARS)
        request.state.principal = principal

    router = APIRouter(tags=["live help (erasure)"])

    @router.post(
        "/v1/help/erasures",
        responses=RESPONSES,
        summary="Forget a person's live-help transcripts (GDPR Art. 17)",
        dependencies=[Depends(eraser)],
    )
    async def erase_person(body: ErasureIn, request: Request) -> ErasureDone:
        """Deletes the person's transcript key, so every live-help message of theirs reads
        "[erased]" (crypto-erasure); the messages themselves go with the transcripts' retention.
        Idempotent. A surface may erase its platforms' users, ops anyone."""
        principal: Principal = request.state.principal
        done = await erasures.erase_person(principal, body.platform, body.user_id)
        return ErasureDone(forgotten=done.forgotten, erased_at=done.erased_at)

    return router
