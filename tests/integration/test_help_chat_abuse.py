"""Live chat under abuse (issue 17 item 5), on the real store and broker: chat opens are limited
per help session, per account (whatever session) and per client address, and messages per chat
and side, per person (across their chats) and per client address, each answered 429
problem+json with Retry-After (an error frame with ``retry_after_s`` on the WebSocket); oversize
messages are refused naming the field, control characters and lone surrogates removed; and a
help session that expires while its WebSocket is open closes the socket (4401): nothing is taken
from it after, and a long-poll ends with its session."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from appeals_runtime import store
from appeals_runtime.http import PROBLEM_JSON
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import Limit
from tests.support.live_help import CHAT_LIMITS, GENEROUS, LiveHelp, bearer, live_help, served

pytestmark = pytest.mark.integration

# DEVELOPMENT-ONLY sample accounts (services/help/dev_accounts.yaml): platform, user id.
AMARA = ("facebook", "fb-dev-amara")
LENA = ("instagram", "ig-dev-lena")
RAFAEL = ("whatsapp", "wa-dev-rafael")
ELSEWHERE = ("198.51.100.7", 40000)  # another client address (TEST-NET-2)


def only(**small: int) -> dict[str, Limit]:
    """Every limit generous but ``small`` ones: that many at once, one an hour after."""
    limits = dict.fromkeys(("address", "account", "contact", "check", *CHAT_LIMITS), GENEROUS)
    return limits | {name: Limit(burst=burst, per_hour=1) for name, burst in small.items()}


@pytest.fixture
async def limited(
    request: pytest.FixtureRequest, db: store.Database, tmp_path: Path, producer: EventProducer
) -> AsyncIterator[LiveHelp]:
    async with live_help(db, tmp_path, producer=producer, limits=request.param) as started:
        yield started


def session(helpdesk: LiveHelp, person: tuple[str, str]) -> str:
    """A fresh help session of ``person`` (as a right code opens one: the code round trip is
    tested in test_help_verification)."""
    token, _ = helpdesk.verifications.sessions.mint(*person, uuid.uuid4().hex)
    return token


async def open_chat(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/v1/help/chats",
        json={"topic": "feature_help", "language": "en", "feature": "reels"},
        headers=bearer(token),
    )


async def close_chat(client: httpx.AsyncClient, token: str, chat_id: str) -> None:
    closed = await client.post(f"/v1/help/chats/{chat_id}/close", json={}, headers=bearer(token))
    assert closed.status_code == 200, closed.text


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["title"] == "Too many requests"
    # A bucket of one an hour: the next token is most of an hour away.
    assert 1800 <= int(response.headers["retry-after"]) <= 3600


@pytest.fixture
async def elsewhere(limited: LiveHelp) -> AsyncIterator[httpx.AsyncClient]:
    """The same live help, reached from another client address."""
    transport = httpx.ASGITransport(app=limited.app, client=ELSEWHERE)
    async with httpx.AsyncClient(transport=transport, base_url="http://help") as client:
        yield client


@pytest.mark.parametrize(
    "limited", [only(chat_session=2, chat_account=3, chat_address=4)], indirect=True
)
async def test_chat_opens_are_limited_per_session_account_and_address(
    limited: LiveHelp, elsewhere: httpx.AsyncClient
) -> None:
    here = limited.client
    # One session: two chats (one at a time), then 429, though the account and the address
    # have more.
    first = session(limited, AMARA)
    for _ in range(2):
        opened = await open_chat(here, first)
        assert opened.status_code == 201, opened.text
        await close_chat(here, first, opened.json()["chat_id"])
    assert_limited(await open_chat(here, first))
    # Another session of the same account: its third chat, then the account's limit holds
    # whatever session asks (a refused open took nothing from any bucket).
    assert (await open_chat(here, session(limited, AMARA))).status_code == 201
    assert_limited(await open_chat(here, session(limited, AMARA)))
    assert_limited(await open_chat(elsewhere, session(limited, AMARA)))
    # Other accounts from the same address: the address's fourth chat, then 429; from
    # another address they go on.
    assert (await open_chat(here, session(limited, LENA))).status_code == 201
    assert_limited(await open_chat(here, session(limited, RAFAEL)))
    assert (await open_chat(elsewhere, session(limited, RAFAEL))).status_code == 201


async def say(
    client: httpx.AsyncClient, token: str, chat_id: str, text: str, client_id: str | None = None
) -> httpx.Response:
    return await client.post(
        f"/v1/help/chats/{chat_id}/messages",
        json={"client_id": client_id or uuid.uuid4().hex[:12], "text": text},
        headers=bearer(token),
    )


@pytest.mark.parametrize(
    "limited",
    [only(chat_messages=3, chat_person_messages=5, chat_address_messages=7)],
    indirect=True,
)
async def test_messages_are_limited_per_chat_person_and_address(
    limited: LiveHelp, elsewhere: httpx.AsyncClient
) -> None:
    here = limited.client
    amara = session(limited, AMARA)
    chat_id = (await open_chat(here, amara)).json()["chat_id"]
    taken = await limited.agent("POST", chat_id, "assignment", json={"agent_id": "agent-1"})
    assert taken.status_code == 200, taken.text
    # Per chat and side: three, then 429; the agent's side of the same chat has its own.
    for n in range(3):
        assert (await say(here, amara, chat_id, f"hello {n}")).status_code == 201
    assert_limited(await say(here, amara, chat_id, "hello again"))
    answer = {"agent_id": "agent-1", "client_id": "a-1", "text": "Hi"}
    assert (await limited.agent("POST", chat_id, "messages", json=answer)).status_code == 201

    # Per person, across their chats: Amara's second session's chat takes two more (five in
    # all), then 429 though that chat's own bucket has one left.
    amara_again = session(limited, AMARA)
    other_chat = (await open_chat(here, amara_again)).json()["chat_id"]
    for n in range(2):
        assert (await say(here, amara_again, other_chat, f"me again {n}")).status_code == 201
    assert_limited(await say(here, amara_again, other_chat, "and again"))

    # Per address: Lena at the same address has two (seven from here in all), then 429; from
    # another address she goes on.
    lena = session(limited, LENA)
    lena_chat = (await open_chat(here, lena)).json()["chat_id"]
    for n in range(2):
        assert (await say(here, lena, lena_chat, f"lena {n}")).status_code == 201
    assert_limited(await say(here, lena, lena_chat, "lena more"))
    assert (await say(elsewhere, lena, lena_chat, "lena from her phone")).status_code == 201

    # The WebSocket says it as an error frame with the wait, and keeps the socket open.
    async with (
        served(limited.app) as base,
        connect(f"{base}/v1/help/chats/{chat_id}/socket") as socket,
    ):
        await socket.send(json.dumps({"type": "hello", "token": amara}))
        await socket.send(json.dumps({"type": "send", "client_id": "w-1", "text": "spam"}))
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        while frame["type"] != "error":
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert frame["detail"] == "too many messages: slow down"
        assert 1800 <= frame["retry_after_s"] <= 3600
        await socket.send(json.dumps({"type": "typing"}))  # still served
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        while not frame.get("receipts", {}).get("person_typing"):
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))

    # What was refused was not stored: each chat's seqs run without gaps.
    seen = await limited.agent(
        "GET", chat_id, "updates", params={"agent_id": "agent-1", "wait_s": 0}
    )
    texts = [m["text"] for m in seen.json()["messages"] if m["party"] == "person"]
    assert texts == ["hello 0", "hello 1", "hello 2"]


async def test_oversize_and_control_character_messages(helpdesk: LiveHelp) -> None:
    client = helpdesk.client
    token = session(helpdesk, AMARA)
    # The first message at the open is held to the same rule.
    refused_open = await client.post(
        "/v1/help/chats",
        json={"topic": "feature_help", "language": "en", "message": "x" * 2001},
        headers=bearer(token),
    )
    assert refused_open.status_code == 400
    assert refused_open.json()["invalid_params"] == [
        {"name": "message", "reason": "1 to 2000 characters of text"}
    ]
    # A language or a feature with a line break or control characters in it.
    odd = await client.post(
        "/v1/help/chats",
        json={"topic": "feature_help", "language": "en\n", "feature": "\x00\x1b\x07"},
        headers=bearer(token),
    )
    assert odd.status_code == 400
    assert {p["name"] for p in odd.json()["invalid_params"]} == {"language", "feature"}
    opened = await client.post(
        "/v1/help/chats",
        json={"topic": "feature_help", "language": "en", "feature": "\x1breels\x07"},
        headers=bearer(token),
    )
    assert opened.status_code == 201, opened.text
    chat_id = opened.json()["chat_id"]
    assert (await helpdesk.db["help_chats"].find_one({"_id": chat_id}) or {})["feature"] == "reels"

    # Over the limit (2000 in this live help) and over what the schema reads at all (20 000).
    for text, reason in (
        ("y" * 2001, "1 to 2000 characters of text"),
        (" \x00\x07\u0085\r\n ", "1 to 2000 characters of text"),  # nothing but controls
    ):
        refused = await say(client, token, chat_id, text)
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert refused.json()["invalid_params"] == [{"name": "text", "reason": reason}]
    huge = await say(client, token, chat_id, "z" * 20_001)
    assert huge.status_code == 400
    assert [p["name"] for p in huge.json()["invalid_params"]] == ["text"]
    bad_id = await say(client, token, chat_id, "hi", client_id="not ok\n")
    assert [p["name"] for p in bad_id.json()["invalid_params"]] == ["client_id"]
    system_id = await say(client, token, chat_id, "hi", client_id="system:decided:ev")
    assert [p["name"] for p in system_id.json()["invalid_params"]] == ["client_id"]

    # Control characters (but newline and tab) removed, trimmed; at the limit is fine.
    kept = await say(client, token, chat_id, " \x1b[31mred\x07 alert\r\n\tsecond line\x00 ")
    assert kept.status_code == 201, kept.text
    assert kept.json()["text"] == "[31mred alert\n\tsecond line"
    assert (await say(client, token, chat_id, "w" * 2000)).status_code == 201
    # The agent's side is sanitised the same way.
    assert (
        await helpdesk.agent("POST", chat_id, "assignment", json={"agent_id": "agent-2"})
    ).status_code == 200
    agent_says = {"agent_id": "agent-2", "client_id": "a-1", "text": "ok\x1b]0;pwned\x07"}
    answered = await helpdesk.agent("POST", chat_id, "messages", json=agent_says)
    assert answered.json()["text"] == "ok]0;pwned"
    long_answer = agent_says | {"client_id": "a-2", "text": "v" * 2001}
    assert (await helpdesk.agent("POST", chat_id, "messages", json=long_answer)).status_code == 400

    # The WebSocket reads frames without a schema: a lone surrogate is dropped, not a crash;
    # an oversize text is an error frame naming the field.
    async with (
        served(helpdesk.app) as base,
        connect(f"{base}/v1/help/chats/{chat_id}/socket") as socket,
    ):
        await socket.send(json.dumps({"type": "hello", "token": token}))
        await socket.send(json.dumps({"type": "send", "client_id": "w-1", "text": "x" * 2001}))
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        while frame["type"] != "error":
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert frame["invalid_params"] == [
            {"name": "text", "reason": "1 to 2000 characters of text"}
        ]
        await socket.send(json.dumps({"type": "send", "client_id": "w-2", "text": "caf\ud800e"}))
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        while not any(m["client_id"] == "w-2" for m in frame.get("messages", [])):
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert [m["text"] for m in frame["messages"] if m["client_id"] == "w-2"] == ["cafe"]

    # Nothing refused was stored: the seqs run without gaps.
    everything = await client.get(
        f"/v1/help/chats/{chat_id}/updates", params={"wait_s": 0}, headers=bearer(token)
    )
    seqs = [m["seq"] for m in everything.json()["messages"]]
    assert seqs == list(range(1, len(seqs) + 1))


async def closed_with(socket: Any) -> int | None:
    """Read until the server closes the socket: the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(10):
            while True:
                await socket.recv()
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


async def chat_of(helpdesk: LiveHelp, token: str) -> str:
    """A chat the session opened, taken by agent-3."""
    opened = await open_chat(helpdesk.client, token)
    assert opened.status_code == 201, opened.text
    chat_id = str(opened.json()["chat_id"])
    taken = await helpdesk.agent("POST", chat_id, "assignment", json={"agent_id": "agent-3"})
    assert taken.status_code == 200, taken.text
    return chat_id


async def test_a_socket_does_not_outlive_its_session(helpdesk: LiveHelp) -> None:
    # Three sessions of the same age (30 minutes), a chat each.
    idle, talking, polling = (session(helpdesk, AMARA) for _ in range(3))
    idle_chat, talking_chat, polling_chat = [
        await chat_of(helpdesk, token) for token in (idle, talking, polling)
    ]
    async with (
        served(helpdesk.app) as base,
        connect(f"{base}/v1/help/chats/{idle_chat}/socket") as idle_socket,
        connect(f"{base}/v1/help/chats/{talking_chat}/socket") as talking_socket,
    ):
        for socket, token in ((idle_socket, idle), (talking_socket, talking)):
            await socket.send(json.dumps({"type": "hello", "token": token}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "updates"

        # Two seconds before the end (the help service's clock): a long-poll asking for 20 s
        # ends with the session.
        helpdesk.clock.advance(timedelta(minutes=29, seconds=58))
        started = time.monotonic()
        polled = await helpdesk.client.get(
            f"/v1/help/chats/{polling_chat}/updates",
            params={"after": 1000, "wait_s": 20},
            headers=bearer(polling),
        )
        assert polled.status_code == 200, polled.text
        assert time.monotonic() - started < 10

        # The sessions end: each socket is closed with 4401 (as for a bad token), the idle one
        # with nothing new to push, and a frame sent after the end is not taken.
        helpdesk.clock.advance(timedelta(seconds=3))
        await talking_socket.send(json.dumps({"type": "send", "client_id": "late", "text": "hi"}))
        assert await closed_with(talking_socket) == 4401
        assert await closed_with(idle_socket) == 4401
    seen = await helpdesk.agent(
        "GET", talking_chat, "updates", params={"agent_id": "agent-3", "wait_s": 0}
    )
    assert "hi" not in [m["text"] for m in seen.json()["messages"]]
    expired = await helpdesk.client.get(
        f"/v1/help/chats/{polling_chat}/updates", params={"wait_s": 0}, headers=bearer(polling)
    )
    assert expired.status_code == 401
