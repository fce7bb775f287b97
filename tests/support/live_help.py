"""Live help on the real store, with the real notifications app sending its codes: both apps
in process (httpx's ASGI transport), the local recording sinks as every platform's channel."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from appeals import platforms
from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.http import HttpServer
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import Limit, RateLimiter
from services.help import api as help_api
from services.help.accounts import FileDirectory
from services.help.chat_repository import ChatRepository
from services.help.chats import Chats
from services.help.config import DEV_ACCOUNTS_FILE
from services.help.consumer import lifecycle_consumer
from services.help.erasure import ChatErasures
from services.help.intake_client import IntakeClient
from services.help.notifications_client import CodeMessenger
from services.help.repository import HelpRepository
from services.help.service import Keys, Verifications
from services.notifications import api as notifications_api
from services.notifications.channels import ChannelDirectory, RecordingSink
from services.notifications.channels.platforms import adapter_for
from services.notifications.codes import CodeSender
from services.notifications.messages import MessageRenderer
from services.notifications.repository import CODES, NotificationsRepository
from tests.support.desk import Clock
from tests.support.waiting import eventually

GENEROUS = Limit(burst=1000, per_hour=100_000)
# The chats' limits (services/help/config.py, HelpSettings.limits).
CHAT_LIMITS = (
    "chat_session", "chat_account", "chat_address", "chat_messages", "chat_person_messages",
    "chat_address_messages",
)  # fmt: skip
CODE = re.compile(r"\b(\d{6})\b")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class LiveHelp:
    client: httpx.AsyncClient
    notifications: httpx.AsyncClient
    db: store.Database
    clock: Clock
    signing_key: Path
    verifications: Verifications
    chats: Chats | None = None
    # The help app itself (to serve it on a real port for WebSocket tests).
    app: Any = None

    async def code_sent_for(self, verification_id: str) -> str:
        """The code in the message notifications recorded for ``verification_id`` (what the
        local channel received)."""

        async def recorded() -> str | None:
            found = await self.db[CODES].find_one({"_id": verification_id})
            return CODE.search(found["body"]).group(1) if found else None  # type: ignore[union-attr]

        return await eventually(recorded, f"a code sent for {verification_id}", 10)

    async def start(self, platform: str, account: str) -> httpx.Response:
        return await self.client.post(
            "/v1/help/verifications", json={"platform": platform, "account": account}
        )

    async def check(self, verification_id: str, code: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/help/verifications/{verification_id}/check", json={"code": code}
        )

    async def session_token(self, platform: str, account: str) -> str:
        """A help session for the account, through the real code round trip."""
        verification_id = (await self.start(platform, account)).json()["verification_id"]
        code = await self.code_sent_for(verification_id)
        checked = await self.check(verification_id, code)
        assert checked.status_code == 200, checked.text
        return str(checked.json()["session_token"])

    def relay_headers(
        self, scopes: list[str] | None = None, role: str = "service"
    ) -> dict[str, str]:
        """Routing's credentials on live help's internal chat API (``scopes``/``role`` to try
        others)."""
        token = devkeys.mint_token(
            self.signing_key,
            role=role,
            subject="routing",
            scopes=devkeys.ROUTING_CHAT_RELAY_SCOPES if scopes is None else scopes,
        )
        return bearer(token)

    async def agent(
        self, method: str, chat_id: str, what: str = "", **kwargs: Any
    ) -> httpx.Response:
        """The agent's side of a chat, as routing relays it (``/internal/v1/chats/...``)."""
        path = f"/internal/v1/chats/{chat_id}" + (f"/{what}" if what else "")
        return await self.client.request(method, path, headers=self.relay_headers(), **kwargs)

    async def answered_chat(
        self, account: tuple[str, str], topic: str, agent_id: str
    ) -> tuple[dict[str, Any], str]:
        """A chat the person of ``account`` opened with a message, ``agent_id`` took and
        answered; with the person's session token."""
        session = await self.session_token(*account)
        opened = await self.client.post(
            "/v1/help/chats",
            json={"topic": topic, "language": "en", "message": f"help, says {account[1]}"},
            headers=bearer(session),
        )
        assert opened.status_code == 201, opened.text
        chat: dict[str, Any] = opened.json()
        taken = await self.agent("POST", chat["chat_id"], "assignment", json={"agent_id": agent_id})
        assert taken.status_code == 200, taken.text
        said = {"agent_id": agent_id, "client_id": "a-1", "text": "How can I help?"}
        answered = await self.agent("POST", chat["chat_id"], "messages", json=said)
        assert answered.status_code == 201, answered.text
        return chat, session


@contextlib.asynccontextmanager
async def lifecycle_consumer_running(
    erasures: ChatErasures, chats: Chats, *, bootstrap_servers: str, producer: EventProducer
) -> AsyncIterator[None]:
    """Live help's lifecycle consumer on the real broker, in a group of its own (so from the
    start of the topic), while the block runs; stopped and awaited after it."""
    runner = lifecycle_consumer(
        erasures,
        chats,
        bootstrap_servers=bootstrap_servers,
        group=f"help-{uuid.uuid4().hex[:8]}",
        producer=producer,
    )
    running = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        await runner.stop()
        await running


def recording_channels() -> ChannelDirectory:
    return ChannelDirectory(
        [adapter_for(platform)(RecordingSink()) for platform in platforms.PLATFORMS],
        platform_channels=platforms.CHANNELS,
    )


@contextlib.asynccontextmanager
async def live_help(
    db: store.Database,
    tmp_path: Path,
    *,
    limits: dict[str, Limit] | None = None,
    attempts: int = 5,
    keep_code_text: bool = True,
    producer: EventProducer | None = None,
    intake: httpx.AsyncClient | None = None,
    accounts_file: Path = DEV_ACCOUNTS_FILE,
) -> AsyncIterator[LiveHelp]:
    """With ``producer``, live chat too (public and internal API), submitting account-access
    appeals to ``intake`` (an in-process intake app's client) with help's surface token."""
    clock = Clock()
    private_key, jwks = devkeys.ensure(tmp_path)
    verifier: TokenVerifier = devkeys.dev_verifier(jwks)
    notifications_repo = NotificationsRepository(db)
    sender = CodeSender(
        notifications_repo,
        MessageRenderer(),
        recording_channels(),
        clock=clock,
        keep_text=keep_code_text,
    )
    notifications_app = notifications_api.create_app(notifications_repo, verifier, codes=sender)
    help_token = devkeys.mint_token(
        private_key, role="service", subject="help", scopes=devkeys.HELP_CODES_SCOPES
    )
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=notifications_app), base_url="http://notifications"
        ) as to_notifications,
    ):
        verifications = Verifications(
            HelpRepository(db),
            FileDirectory(accounts_file),
            CodeMessenger(to_notifications, "http://notifications", help_token),
            Keys.derive(b"k" * 32),
            RateLimiter(
                limits or dict.fromkeys(("address", "account", "contact", "check"), GENEROUS)
            ),
            code_ttl=timedelta(minutes=10),
            attempts=attempts,
            session_ttl=timedelta(minutes=30),
            clock=clock,
        )
        chats = None
        if producer is not None:
            intake_token = devkeys.mint_token(
                private_key, role="surface", subject="help", scopes=devkeys.HELP_SURFACE_SCOPES,
                platforms=list(platforms.NAMES),
            )  # fmt: skip
            chats = Chats(
                ChatRepository(db, Keys.derive(b"k" * 32).transcripts),
                FileDirectory(accounts_file),
                IntakeClient(
                    intake or httpx.AsyncClient(base_url="http://127.0.0.1:9"),
                    "http://intake" if intake is not None else "http://127.0.0.1:9",
                    intake_token,
                ),
                producer,
                Keys.derive(b"k" * 32),
                RateLimiter(limits or dict.fromkeys(CHAT_LIMITS, GENEROUS)),
                first_answer_sla=timedelta(seconds=120),
                max_chars=2000,
                clock=clock,
            )
        app = help_api.create_app(verifications, chats=chats, verifier=verifier)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://help"
        ) as client:
            yield LiveHelp(
                client, to_notifications, db, clock, private_key, verifications, chats, app
            )


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """``app`` on a real port (WebSockets need one; httpx's ASGI transport has none): its
    ``ws://`` base URL while the block runs."""
    port = free_port()
    server = HttpServer(app, host="127.0.0.1", port=port)
    task = asyncio.create_task(server.run())
    deadline = time.monotonic() + 10
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the help app did not start"
            await asyncio.sleep(0.05)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        await server.stop()
        await task
