"""Live-help chat over HTTP: the person's public API (bearer = a help session token; a session
reaches only the chats it opened, others are 404), the WebSocket the page uses, and the internal
API routing relays agents through (bearer = a service token with ``chats:relay``).

Shapes (snake_case, RFC 3339 times) and semantics: see ``services/help/README.md`` ("Live
chat"). Errors are RFC 9457 problem documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from appeals_runtime.auth import (
    Principal,
    Role,
    Scope,
    TokenVerifier,
    Unauthenticated,
    bearer_token,
)
from appeals_runtime.errors import (
    Conflict,
    NotFound,
    TooManyRequests,
    TransientError,
    Unprocessable,
    ValidationFailed,
)
from appeals_runtime.http import retry_after_seconds
from services.help.chats import CHAT_ID_PATTERN, MAX_WAIT_S, Chats
from services.help.sessions import HelpSession, SessionTokens

log = logging.getLogger(__name__)

ChatId = Annotated[str, Path(pattern=CHAT_ID_PATTERN)]
After = Annotated[int, Query(ge=0)]
WaitS = Annotated[float, Query(ge=0, le=MAX_WAIT_S)]
Bearer = Annotated[str | None, Header(alias="Authorization")]
# A WebSocket must say hello (with the session token) this soon after it opened.
HELLO_TIMEOUT_S = 10.0
# How often an open socket looks at its session's clock: it is closed (4401) when the session
# ends, within this long (exactly at expiry by the wall clock; a test's clock is read this often).
SESSION_CHECK_S = 1.0
# The most attachments a body may list before the rule counts them (5): anything between is
# refused by the rule with its own words, beyond that by the schema.
PARSED_ATTACHMENTS = 100
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_HELLO = 4400


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenIn(_Strict):
    topic: str = Field(max_length=32)
    language: str = Field(default="en", max_length=8)
    message: str | None = Field(default=None, max_length=20_000)
    feature: str | None = Field(default=None, max_length=200)


class AttachmentIn(_Strict):
    """A reference to what the person attaches (never the media): the appeals' rule
    (``appeals.attachments``: types, https URL, size, how many) is checked by the use case, for
    the WebSocket's frames too."""

    media_type: str = Field(max_length=255, examples=["image/png"])
    uri: str = Field(max_length=8192, examples=["https://cdn.example.org/screenshot.png"])
    size_bytes: int = Field(examples=[48213])


class MessageIn(_Strict):
    client_id: str = Field(max_length=64)
    text: str = Field(max_length=20_000)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=PARSED_ATTACHMENTS)


class ReceiptsIn(_Strict):
    typing: bool = False
    read_up_to: int | None = Field(default=None, ge=0)


class CloseIn(_Strict):
    pass


class AgentIn(_Strict):
    agent_id: str = Field(max_length=128)


class HandOverIn(AgentIn):
    reason: str = Field(default="", max_length=500)
    to_agent_id: str | None = Field(default=None, max_length=128)


class AgentCloseIn(AgentIn):
    resolution: str = Field(max_length=64)


class AgentMessageIn(AgentIn):
    client_id: str = Field(max_length=64)
    text: str = Field(max_length=20_000)


class AgentReceiptsIn(AgentIn):
    typing: bool = False
    read_up_to: int | None = Field(default=None, ge=0)


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def person_router(chats: Chats, sessions: SessionTokens) -> APIRouter:
    router = APIRouter(tags=["live chat"])

    def session_of(authorization: str | None) -> HelpSession:
        return sessions.verify(bearer_token(authorization))

    @router.post("/v1/help/chats", status_code=201)
    async def open_chat(body: OpenIn, request: Request, authorization: Bearer = None) -> Any:
        """Open a chat (201), or answer the session's open one (200)."""
        session = session_of(authorization)
        state, created = await chats.open(
            session, topic=body.topic, language=body.language, message=body.message,
            feature=body.feature, client=_client(request),
        )  # fmt: skip
        return _json(state, 201 if created else 200)

    @router.get("/v1/help/chats/{chat_id}")
    async def chat_state(chat_id: ChatId, authorization: Bearer = None) -> Any:
        return _json(await chats.for_person(session_of(authorization), chat_id))

    @router.get("/v1/help/chats/{chat_id}/updates")
    async def chat_updates(
        chat_id: ChatId, after: After = 0, wait_s: WaitS = 20, authorization: Bearer = None
    ) -> Any:
        """Messages after ``after``, receipts and state; waits up to ``wait_s`` for news."""
        session = session_of(authorization)
        return _json((await chats.person_updates(session, chat_id, after, wait_s)).body)

    @router.post("/v1/help/chats/{chat_id}/messages", status_code=201)
    async def post_message(
        chat_id: ChatId, body: MessageIn, request: Request, authorization: Bearer = None
    ) -> Any:
        session = session_of(authorization)
        message, created = await chats.person_message(
            session, chat_id, body.client_id, body.text,
            attachments=[a.model_dump() for a in body.attachments], client=_client(request),
        )  # fmt: skip
        return _json(message, 201 if created else 200)

    @router.post("/v1/help/chats/{chat_id}/receipts", status_code=204)
    async def post_receipts(
        chat_id: ChatId, body: ReceiptsIn, authorization: Bearer = None
    ) -> Response:
        session = session_of(authorization)
        await chats.person_receipts(session, chat_id, body.typing, body.read_up_to)
        return Response(status_code=204)

    @router.post("/v1/help/chats/{chat_id}/close")
    async def close_chat(
        chat_id: ChatId, body: CloseIn | None = None, authorization: Bearer = None
    ) -> Any:
        return _json(await chats.person_close(session_of(authorization), chat_id))

    @router.websocket("/v1/help/chats/{chat_id}/socket")
    async def chat_socket(websocket: WebSocket, chat_id: str) -> None:
        await ChatSocket(websocket, chats, sessions, chat_id).run()

    return router


class ChatSocket:
    """One person's WebSocket: a hello with the session token (browsers cannot set headers on a
    WebSocket), then updates pushed as they come and the person's frames handled. The socket
    does not outlive the session: it is closed with 4401 when the session expires, and a frame
    that arrives after is not handled."""

    def __init__(
        self, websocket: WebSocket, chats: Chats, sessions: SessionTokens, chat_id: str
    ) -> None:
        self._ws = websocket
        self._chats = chats
        self._sessions = sessions
        self._chat_id = chat_id
        self._sending = asyncio.Lock()

    async def run(self) -> None:
        await self._ws.accept()
        try:
            hello = await asyncio.wait_for(self._ws.receive_json(), HELLO_TIMEOUT_S)
        except (TimeoutError, ValueError, WebSocketDisconnect):
            await self._close(CLOSE_BAD_HELLO)
            return
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            await self._close(CLOSE_BAD_HELLO)
            return
        token = str(hello.get("token") or "")
        try:
            session = self._sessions.verify(token)
            await self._chats.for_person(session, self._chat_id)
        except Unauthenticated:
            await self._close(CLOSE_UNAUTHENTICATED)
            return
        except NotFound:
            await self._close(CLOSE_NOT_FOUND)
            return
        after = hello.get("after", 0)
        pump = asyncio.create_task(
            self._pump(token, session, after if isinstance(after, int) and after >= 0 else 0)
        )
        watch = asyncio.create_task(self._watch(session))
        try:
            await self._receive(session)
        finally:
            for task in (pump, watch):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _watch(self, session: HelpSession) -> None:
        """Close the socket (4401) when the session ends: the pump notices only between waits
        for news, and the person's frames must stop being taken at once."""
        while True:
            left = self._sessions.seconds_left(session)
            if left <= 0:
                await self._close(CLOSE_UNAUTHENTICATED)
                return
            await asyncio.sleep(min(left, SESSION_CHECK_S))

    async def _pump(self, token: str, session: HelpSession, after: int) -> None:
        first = True
        try:
            while True:
                try:
                    self._sessions.verify(token)  # expired meanwhile: the socket ends
                except Unauthenticated:
                    await self._close(CLOSE_UNAUTHENTICATED)
                    return
                updates = await self._chats.person_updates(
                    session, self._chat_id, after, 0 if first else MAX_WAIT_S
                )
                if updates.fresh or first:
                    await self._send({"type": "updates", **updates.body})
                if updates.body["messages"]:
                    after = updates.body["messages"][-1]["seq"]
                first = False
        except (WebSocketDisconnect, RuntimeError):
            return  # the socket closed under us
        except (TransientError, NotFound) as error:
            with contextlib.suppress(Exception):
                await self._send({"type": "error", "detail": str(error)})
                await self._close(1011)

    async def _receive(self, session: HelpSession) -> None:
        while True:
            try:
                frame = await self._ws.receive_json()
            except (WebSocketDisconnect, RuntimeError):
                return  # closed (by the client, or by the pump: the session expired)
            except (ValueError, KeyError):
                await self._send({"type": "error", "detail": "frames are JSON objects"})
                continue
            if self._sessions.seconds_left(session) <= 0:
                await self._close(CLOSE_UNAUTHENTICATED)  # expired: the frame is not taken
                return
            try:
                await self._handle(session, frame)
            except (
                ValidationFailed, Conflict, TooManyRequests, TransientError, Unprocessable,
                NotFound, Unauthenticated,
            ) as error:  # fmt: skip
                await self._send(_error_frame(error))

    async def _handle(self, session: HelpSession, frame: Any) -> None:
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "send":
            client = self._ws.client.host if self._ws.client else "unknown"
            await self._chats.person_message(
                session, self._chat_id, str(frame.get("client_id", "")),
                str(frame.get("text", "")), attachments=frame.get("attachments"), client=client,
            )  # fmt: skip
        elif kind == "typing":
            await self._chats.person_receipts(session, self._chat_id, True, None)
        elif kind == "read" and isinstance(frame.get("up_to"), int) and frame["up_to"] >= 0:
            await self._chats.person_receipts(session, self._chat_id, False, frame["up_to"])
        else:
            await self._send({"type": "error", "detail": "expected a send, typing or read frame"})

    async def _send(self, frame: dict[str, Any]) -> None:
        async with self._sending:
            await self._ws.send_json(jsonable_encoder(frame))

    async def _close(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close(code)


def _error_frame(error: Exception) -> dict[str, Any]:
    """A refused frame, said as precisely as the REST API's problem document says it: the
    invalid fields, the code, how long to wait."""
    frame: dict[str, Any] = {"type": "error", "detail": str(error)}
    if isinstance(error, ValidationFailed):
        frame["invalid_params"] = [
            {"name": v.field, "reason": v.description} for v in error.violations
        ]
    if isinstance(error, Conflict | Unprocessable | TooManyRequests):
        if error.code:
            frame["code"] = error.code
        if error.retry_after_s is not None:
            frame["retry_after_s"] = retry_after_seconds(error.retry_after_s)
    return frame


def internal_router(chats: Chats, verifier: TokenVerifier) -> APIRouter:
    """Routing's relay of the agents' side: a service token with ``chats:relay`` only."""

    # A dependency of the whole router, so the caller is checked before the body is: anyone
    # else learns nothing about what a valid request looks like.
    def relay(authorization: Bearer = None) -> Principal:
        principal = verifier.verify_header(authorization)
        principal.require(Scope.RELAY_CHATS, role=Role.SERVICE)
        return principal

    router = APIRouter(
        prefix="/internal/v1/chats", tags=["live chat (internal)"], dependencies=[Depends(relay)]
    )

    @router.get("/{chat_id}")
    async def chat_state(chat_id: ChatId) -> Any:
        return _json(await chats.state(chat_id))

    @router.post("/{chat_id}/assignment")
    async def assign(chat_id: ChatId, body: AgentIn) -> Any:
        return _json(await chats.assign(chat_id, body.agent_id))

    @router.post("/{chat_id}/handover")
    async def hand_over(chat_id: ChatId, body: HandOverIn) -> Any:
        return _json(await chats.hand_over(chat_id, body.agent_id, body.reason, body.to_agent_id))

    @router.post("/{chat_id}/close")
    async def close(chat_id: ChatId, body: AgentCloseIn) -> Any:
        return _json(await chats.agent_close(chat_id, body.agent_id, body.resolution))

    @router.get("/{chat_id}/updates")
    async def updates(
        chat_id: ChatId,
        agent_id: Annotated[str, Query(max_length=128)],
        after: After = 0,
        wait_s: WaitS = 20,
    ) -> Any:
        return _json((await chats.agent_updates(chat_id, agent_id, after, wait_s)).body)

    @router.post("/{chat_id}/messages", status_code=201)
    async def message(chat_id: ChatId, body: AgentMessageIn) -> Any:
        stored, created = await chats.agent_message(
            chat_id, body.agent_id, body.client_id, body.text
        )
        return _json(stored, 201 if created else 200)

    @router.post("/{chat_id}/receipts", status_code=204)
    async def receipts(chat_id: ChatId, body: AgentReceiptsIn) -> Response:
        await chats.agent_receipts(chat_id, body.agent_id, body.typing, body.read_up_to)
        return Response(status_code=204)

    return router
