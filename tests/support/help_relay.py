"""A TEST STAND-IN for the help service's INTERNAL chat API (the contract in
services/routing/README.md "Live-help chats"; the real one is services/help's), for routing's
chat tests while the real one is being written. The end-to-end tests use the real help service.

Faithful where routing can tell: the same routes, JSON shapes, status codes and problem codes
(``chat_taken``, ``chat_closed``, ``not_assigned_to_you``); the bearer token must be a service
token with scope ``chats:relay`` (checked with the dev verifier); messages are numbered from 1
without gaps and stored once per ``client_id``; updates long-poll; and every change of state
publishes the real ``ChatEvent`` to ``help.chats.v1`` on the test session's broker. Chats live in
memory, and the person's side is driven by the test through methods (no public API here).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from appeals import topics, vocabulary
from appeals.v1 import chat_pb2
from appeals_runtime.auth import Principal, Role, Scope, TokenVerifier
from appeals_runtime.errors import Conflict, FieldViolation, NotFound, ValidationFailed
from appeals_runtime.http import Caller, health_router, install_problem_handlers
from appeals_runtime.kafka.producer import EventProducer
from tests.support.http_server import serving

FIRST_ANSWER_SLA = timedelta(minutes=5)
TYPING_S = 5.0
MAX_TEXT = 2000


@dataclass
class Chat:
    chat_id: str
    platform: str
    topic: str
    language: str
    appeal_id: str
    requested_at: datetime
    first_answer_due_at: datetime
    state: str = "waiting"
    agent_id: str = ""
    offered_to: str = ""
    first_answer_at: datetime | None = None
    closed_at: datetime | None = None
    resolution: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    by_client_id: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    person_delivered: int = 0
    person_read: int = 0
    agent_delivered: int = 0
    agent_read: int = 0
    person_typing_at: float = -1e9
    agent_typing_at: float = -1e9
    # Bumped on every change; what the agent last read (the long poll answers a change at once).
    version: int = 0
    agent_seen: int = -1

    def state_json(self) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "state": self.state,
            "platform": self.platform,
            "topic": self.topic,
            "language": self.language,
            "appeal_id": self.appeal_id,
            "agent_id": self.agent_id,
            "offered_to": self.offered_to,
            "requested_at": _iso(self.requested_at),
            "first_answer_due_at": _iso(self.first_answer_due_at),
            "first_answer_at": _iso(self.first_answer_at),
            "closed_at": _iso(self.closed_at),
            "resolution": self.resolution,
        }

    def receipts(self, now: float) -> dict[str, Any]:
        return {
            "person_delivered": self.person_delivered,
            "person_read": self.person_read,
            "agent_delivered": self.agent_delivered,
            "agent_read": self.agent_read,
            "person_typing": now - self.person_typing_at < TYPING_S,
            "agent_typing": now - self.agent_typing_at < TYPING_S,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class Assignment(BaseModel):
    agent_id: str


class HandOver(BaseModel):
    agent_id: str
    reason: str = ""
    to_agent_id: str = ""


class Closing(BaseModel):
    agent_id: str
    resolution: str


class NewMessage(BaseModel):
    agent_id: str
    client_id: str
    text: str


class ReceiptsBody(BaseModel):
    agent_id: str
    typing: bool | None = None
    read_up_to: int | None = None


def _relay_caller(caller: Principal) -> None:
    caller.require(Scope.RELAY_CHATS, role=Role.SERVICE)


class HelpRelay:
    """The chats, the app serving help's internal API over them, and the person's side."""

    def __init__(
        self,
        producer: EventProducer,
        verifier: TokenVerifier,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._producer = producer
        self._clock = clock
        self.chats: dict[str, Chat] = {}
        self.published: list[chat_pb2.ChatEvent] = []
        self._changed = asyncio.Condition()
        self.app = self._create_app(verifier)

    # --- the person's side and the test's view --------------------------------------------

    async def open(
        self,
        *,
        platform: str = "instagram",
        language: str = "en",
        topic: str = "feature_help",
        appeal_id: str = "",
        due_in: timedelta = FIRST_ANSWER_SLA,
        first_message: str = "",
    ) -> str:
        """A person opens a chat: it waits, and REQUESTED goes out."""
        now = self._clock()
        chat = Chat(
            chat_id=f"chat_{uuid.uuid4().hex[:12]}",
            platform=platform,
            topic=topic,
            language=language,
            appeal_id=appeal_id,
            requested_at=now,
            first_answer_due_at=now + due_in,
        )
        self.chats[chat.chat_id] = chat
        if first_message:
            self._append(chat, "person", first_message, "", "")
        await self._publish(chat, chat_pb2.CHAT_EVENT_KIND_REQUESTED, verification_id="v-test")
        return chat.chat_id

    async def person_says(self, chat_id: str, text: str) -> dict[str, Any]:
        async with self._changed:
            message = self._append(self.chats[chat_id], "person", text, uuid.uuid4().hex, "")
            self._touch(self.chats[chat_id])
            return message

    async def person_typing(self, chat_id: str) -> None:
        async with self._changed:
            chat = self.chats[chat_id]
            chat.person_typing_at = asyncio.get_running_loop().time()
            self._touch(chat)

    async def person_reads(self, chat_id: str, up_to: int) -> None:
        async with self._changed:
            chat = self.chats[chat_id]
            chat.person_delivered = max(chat.person_delivered, up_to)
            chat.person_read = max(chat.person_read, up_to)
            self._touch(chat)

    async def person_closes(self, chat_id: str) -> None:
        chat = self.chats[chat_id]
        await self._close(chat, "closed_by_person", agent_id="")

    # --- internals ---------------------------------------------------------------------------

    def _append(
        self, chat: Chat, party: str, text: str, client_id: str, agent_id: str
    ) -> dict[str, Any]:
        message = {
            "chat_id": chat.chat_id,
            "seq": len(chat.messages) + 1,
            "party": party,
            "text": text,
            "sent_at": _iso(self._clock()),
            "client_id": client_id,
            "agent_id": agent_id,
        }
        chat.messages.append(message)
        return message

    def _touch(self, chat: Chat) -> None:
        """Under the condition's lock: wake every long poll."""
        chat.version += 1
        self._changed.notify_all()

    async def _publish(self, chat: Chat, kind: int, **fields: str) -> None:
        event = chat_pb2.ChatEvent(
            event_id=uuid.uuid4().hex,
            chat_id=chat.chat_id,
            kind=kind,  # type: ignore[arg-type]
            platform=vocabulary.PLATFORMS[chat.platform],  # type: ignore[arg-type]
            topic=vocabulary.CHAT_TOPICS[chat.topic],  # type: ignore[arg-type]
            language=chat.language,
            appeal_id=chat.appeal_id,
            **fields,  # type: ignore[arg-type]
        )
        event.occurred_at.FromDatetime(self._clock())
        event.requested_at.FromDatetime(chat.requested_at)
        if kind in (chat_pb2.CHAT_EVENT_KIND_REQUESTED, chat_pb2.CHAT_EVENT_KIND_HANDED_OVER):
            event.first_answer_due_at.FromDatetime(chat.first_answer_due_at)
        self.published.append(event)
        await self._producer.publish(topics.HELP_CHATS, event)

    def _chat(self, chat_id: str) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None:
            raise NotFound(f"no chat {chat_id}")
        return chat

    @staticmethod
    def _assigned_to(chat: Chat, agent_id: str) -> None:
        if chat.state != "assigned" or chat.agent_id != agent_id:
            raise Conflict("the chat is not assigned to you", code="not_assigned_to_you")

    async def _close(self, chat: Chat, resolution: str, *, agent_id: str) -> None:
        async with self._changed:
            chat.state = "closed"
            chat.closed_at = self._clock()
            chat.resolution = resolution
            self._append(chat, "system", "The chat was closed", "", "")
            self._touch(chat)
        await self._publish(
            chat, chat_pb2.CHAT_EVENT_KIND_CLOSED, agent_id=agent_id, resolution=resolution
        )

    def _create_app(self, verifier: TokenVerifier) -> FastAPI:
        app = FastAPI(title="help's internal chat API (test stand-in)")
        app.state.verifier = verifier
        install_problem_handlers(app)
        app.include_router(health_router({}))
        base = "/internal/v1/chats/{chat_id}"

        @app.get(base)
        async def state(chat_id: str, caller: Caller) -> dict[str, Any]:
            _relay_caller(caller)
            return self._chat(chat_id).state_json()

        @app.post(f"{base}/assignment")
        async def assign(chat_id: str, body: Assignment, caller: Caller) -> dict[str, Any]:
            _relay_caller(caller)
            chat = self._chat(chat_id)
            if chat.state == "closed":
                raise Conflict("the chat is closed", code="chat_closed")
            if chat.state == "assigned":
                if chat.agent_id == body.agent_id:
                    return chat.state_json()
                raise Conflict("another agent has the chat", code="chat_taken")
            async with self._changed:
                chat.state, chat.agent_id = "assigned", body.agent_id
                self._append(chat, "system", "An agent joined", "", "")
                self._touch(chat)
            await self._publish(chat, chat_pb2.CHAT_EVENT_KIND_AGENT_JOINED, agent_id=body.agent_id)
            return chat.state_json()

        @app.post(f"{base}/handover")
        async def hand_over(chat_id: str, body: HandOver, caller: Caller) -> dict[str, Any]:
            _relay_caller(caller)
            chat = self._chat(chat_id)
            self._assigned_to(chat, body.agent_id)
            now = self._clock()
            async with self._changed:
                chat.state, chat.agent_id, chat.offered_to = "waiting", "", body.to_agent_id
                if chat.first_answer_due_at <= now:
                    chat.first_answer_due_at = now + FIRST_ANSWER_SLA
                self._touch(chat)
            await self._publish(chat, chat_pb2.CHAT_EVENT_KIND_HANDED_OVER, agent_id=body.agent_id)
            return chat.state_json()

        @app.post(f"{base}/close")
        async def close(chat_id: str, body: Closing, caller: Caller) -> dict[str, Any]:
            _relay_caller(caller)
            chat = self._chat(chat_id)
            self._assigned_to(chat, body.agent_id)
            await self._close(chat, body.resolution, agent_id=body.agent_id)
            return chat.state_json()

        @app.get(f"{base}/updates")
        async def updates(
            chat_id: str,
            caller: Caller,
            agent_id: str,
            after: Annotated[int, Query(ge=0)] = 0,
            wait_s: Annotated[int, Query(ge=0, le=25)] = 20,
        ) -> dict[str, Any]:
            _relay_caller(caller)
            chat = self._chat(chat_id)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_s
            async with self._changed:
                while True:
                    if not (chat.agent_id == agent_id and chat.state in ("assigned", "closed")):
                        raise Conflict(
                            "the chat is not assigned to you", code="not_assigned_to_you"
                        )
                    fresh = chat.messages and chat.messages[-1]["seq"] > after
                    if fresh or chat.version != chat.agent_seen or loop.time() >= deadline:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
                chat.agent_seen = chat.version
                messages = [m for m in chat.messages if m["seq"] > after][:100]
                if messages:
                    chat.agent_delivered = max(chat.agent_delivered, messages[-1]["seq"])
                return {
                    "state": chat.state_json(),
                    "messages": messages,
                    "receipts": chat.receipts(loop.time()),
                }

        @app.post(f"{base}/messages")
        async def send(chat_id: str, body: NewMessage, caller: Caller) -> JSONResponse:
            _relay_caller(caller)
            chat = self._chat(chat_id)
            self._assigned_to(chat, body.agent_id)
            text = "".join(c for c in body.text if c.isprintable() or c in "\n\t").strip()
            if not 1 <= len(text) <= MAX_TEXT:
                raise ValidationFailed([FieldViolation("text", "1 to 2000 characters")])
            known = chat.by_client_id.get((body.agent_id, body.client_id))
            if known is not None:
                return JSONResponse(known, status_code=200)
            first = chat.first_answer_at is None
            async with self._changed:
                message = self._append(chat, "agent", text, body.client_id, body.agent_id)
                chat.by_client_id[(body.agent_id, body.client_id)] = message
                if first:
                    chat.first_answer_at = self._clock()
                self._touch(chat)
            if first:
                await self._publish(
                    chat, chat_pb2.CHAT_EVENT_KIND_FIRST_ANSWER, agent_id=body.agent_id
                )
            return JSONResponse(message, status_code=201)

        @app.post(f"{base}/receipts", status_code=204)
        async def receipts(chat_id: str, body: ReceiptsBody, caller: Caller) -> Response:
            _relay_caller(caller)
            chat = self._chat(chat_id)
            self._assigned_to(chat, body.agent_id)
            async with self._changed:
                if body.typing:
                    chat.agent_typing_at = asyncio.get_running_loop().time()
                if body.read_up_to is not None:
                    chat.agent_read = max(chat.agent_read, min(body.read_up_to, len(chat.messages)))
                self._touch(chat)
            return Response(status_code=204)

        return app


@contextlib.asynccontextmanager
async def help_relay(
    producer: EventProducer, verifier: TokenVerifier
) -> AsyncIterator[tuple[HelpRelay, str]]:
    """The stand-in served on a free port; yields it and its base URL."""
    relay = HelpRelay(producer, verifier)
    async with serving(relay.app) as base_url:
        yield relay, base_url
