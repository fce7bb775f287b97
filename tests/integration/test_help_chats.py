"""Live chat in the help service (issue 17 item 2, item 4's encryption), on the real store and
broker, with intake's real app in-process taking the appeals account-access chats attach: the
person's public API and WebSocket, routing's internal relay API, the events on help.chats.v1,
and transcripts encrypted per person (erased with the person's key)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from appeals import topics
from appeals.v1 import chat_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer
from services.help.chat_repository import CHATS, MESSAGES, PERSON_KEYS
from tests.support.desk import EventTap
from tests.support.intake_app import IntakeUnderTest
from tests.support.live_help import LiveHelp, bearer, live_help, served

pytestmark = pytest.mark.integration

LENA = ("instagram", "lena.k")  # DEVELOPMENT-ONLY sample account with a decision on it
AMARA = ("facebook", "amara.okafor")
SECRET_WORDS = "my old password was Sonnenblume77"


@pytest.fixture
async def chat_events(infra: Infrastructure) -> AsyncIterator[EventTap]:
    async with EventTap(infra.kafka_bootstrap_servers, topics.HELP_CHATS) as tap:
        yield tap


async def open_chat(helpdesk: LiveHelp, token: str, **body: Any) -> httpx.Response:
    return await helpdesk.client.post(
        "/v1/help/chats", json={"language": "en", **body}, headers=bearer(token)
    )


async def test_a_person_and_an_agent_chat_about_an_appeal_of_the_account(
    helpdesk: LiveHelp, intake: IntakeUnderTest, chat_events: EventTap
) -> None:
    token = await helpdesk.session_token(*LENA)
    opened = await open_chat(
        helpdesk,
        token,
        topic="account_access",
        message=f"  I cannot log in\x07\x1b: {SECRET_WORDS} ",
    )
    assert opened.status_code == 201, opened.text
    chat = opened.json()
    chat_id = chat["chat_id"]
    assert (chat["state"], chat["topic"], chat["platform"], chat["agent_id"]) == (
        "waiting", "account_access", "instagram", ""
    )  # fmt: skip
    due = datetime.fromisoformat(chat["first_answer_due_at"])
    assert (due - datetime.fromisoformat(chat["requested_at"])).total_seconds() == 120
    # The appeal was submitted to intake for the account's decision, by help as a surface.
    appeal = await intake.client.get(
        f"/v1/appeals/{chat['appeal_id']}", headers=bearer(intake.token())
    )
    assert appeal.status_code == 200, appeal.text
    assert appeal.json()["subject"] == {"kind": "account", "id": "ig-dev-lena"}
    assert appeal.json()["decision"]["action"] == "account_locked"

    # One open chat per session: a second open answers it.
    again = await open_chat(helpdesk, token, topic="feature_help")
    assert (again.status_code, again.json()["chat_id"]) == (200, chat_id)

    # Routing's agents: the first to accept takes it, the same one again is fine, a second 409.
    taken = await helpdesk.agent("POST", chat_id, "assignment", json={"agent_id": "agent-1"})
    assert (taken.status_code, taken.json()["state"], taken.json()["agent_id"]) == (
        200, "assigned", "agent-1"
    )  # fmt: skip
    assert (
        await helpdesk.agent("POST", chat_id, "assignment", json={"agent_id": "agent-1"})
    ).status_code == 200
    second = await helpdesk.agent("POST", chat_id, "assignment", json={"agent_id": "agent-2"})
    assert (second.status_code, second.json()["code"]) == (409, "chat_taken")

    seen = await helpdesk.agent(
        "GET", chat_id, "updates", params={"agent_id": "agent-1", "wait_s": 0}
    )
    assert seen.status_code == 200, seen.text
    first, joined = seen.json()["messages"]
    assert (first["seq"], first["party"]) == (1, "person")
    # Control characters removed and trimmed; otherwise the text as written.
    assert first["text"] == f"I cannot log in: {SECRET_WORDS}"
    assert (joined["seq"], joined["party"]) == (2, "system")
    assert seen.json()["receipts"]["agent_delivered"] == 2

    # The agent answers; the same client id again is stored once.
    answer = {"agent_id": "agent-1", "client_id": "a-1", "text": "Hello, I am looking into it."}
    posted = await helpdesk.agent("POST", chat_id, "messages", json=answer)
    assert (posted.status_code, posted.json()["seq"]) == (201, 3), posted.text
    resent = await helpdesk.agent("POST", chat_id, "messages", json=answer)
    assert (resent.status_code, resent.json()["seq"]) == (200, 3)
    shown = (await helpdesk.client.get(f"/v1/help/chats/{chat_id}", headers=bearer(token))).json()
    assert shown["first_answer_at"] is not None

    # The person resumes after what they hold (seq 1) and loses nothing.
    resumed = await helpdesk.client.get(
        f"/v1/help/chats/{chat_id}/updates", params={"after": 1, "wait_s": 0}, headers=bearer(token)
    )
    assert [m["seq"] for m in resumed.json()["messages"]] == [2, 3]
    assert resumed.json()["receipts"]["person_delivered"] == 3

    # A long-poll wakes when the agent writes.
    started = time.monotonic()
    waiting = asyncio.create_task(
        helpdesk.client.get(
            f"/v1/help/chats/{chat_id}/updates",
            params={"after": 3, "wait_s": 20},
            headers=bearer(token),
        )
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()
    more = {"agent_id": "agent-1", "client_id": "a-2", "text": "Which phone did you use?"}
    assert (await helpdesk.agent("POST", chat_id, "messages", json=more)).status_code == 201
    woken = await asyncio.wait_for(waiting, 10)
    assert time.monotonic() - started < 5
    assert [m["text"] for m in woken.json()["messages"]] == ["Which phone did you use?"]

    # The person answers, reads and types; the agent sees it.
    reply = await helpdesk.client.post(
        f"/v1/help/chats/{chat_id}/messages",
        json={"client_id": "p-1", "text": "The old one"},
        headers=bearer(token),
    )
    assert (reply.status_code, reply.json()["seq"], reply.json()["party"]) == (201, 5, "person")
    receipts = await helpdesk.client.post(
        f"/v1/help/chats/{chat_id}/receipts",
        json={"typing": True, "read_up_to": 4},
        headers=bearer(token),
    )
    assert receipts.status_code == 204
    everything = await helpdesk.agent(
        "GET", chat_id, "updates", params={"agent_id": "agent-1", "wait_s": 0}
    )
    assert [m["seq"] for m in everything.json()["messages"]] == [1, 2, 3, 4, 5]
    assert everything.json()["receipts"]["person_read"] == 4
    assert everything.json()["receipts"]["person_typing"] is True

    # A hand-over only by the agent who has it; then it waits, and another agent takes it.
    wrong = await helpdesk.agent("POST", chat_id, "handover", json={"agent_id": "agent-2"})
    assert (wrong.status_code, wrong.json()["code"]) == (409, "not_assigned_to_you")
    handed = await helpdesk.agent(
        "POST", chat_id, "handover", json={"agent_id": "agent-1", "reason": "shift end"}
    )
    assert (handed.status_code, handed.json()["state"], handed.json()["agent_id"]) == (
        200, "waiting", ""
    )  # fmt: skip
    assert (
        await helpdesk.agent("POST", chat_id, "assignment", json={"agent_id": "agent-2"})
    ).status_code == 200
    closed = await helpdesk.agent(
        "POST", chat_id, "close", json={"agent_id": "agent-2", "resolution": "access_restored"}
    )
    assert (closed.status_code, closed.json()["state"], closed.json()["resolution"]) == (
        200, "closed", "access_restored"
    )  # fmt: skip
    late = await helpdesk.client.post(
        f"/v1/help/chats/{chat_id}/messages",
        json={"client_id": "p-2", "text": "Thanks!"},
        headers=bearer(token),
    )
    assert (late.status_code, late.json()["code"]) == (409, "chat_closed")

    # The events, acknowledged before each answer; never any text of the chat.
    kinds = chat_pb2.ChatEventKind

    def of_chat(events: list[Any]) -> list[chat_pb2.ChatEvent]:
        distinct: dict[str, chat_pb2.ChatEvent] = {}
        for event in events:
            if event.chat_id == chat_id:
                distinct.setdefault(event.event_id, event)
        return list(distinct.values())

    events = of_chat(
        await chat_events.until(
            lambda seen: any(e.kind == kinds.Value("CHAT_EVENT_KIND_CLOSED") for e in of_chat(seen))
        )
    )
    assert [kinds.Name(e.kind) for e in events] == [
        "CHAT_EVENT_KIND_REQUESTED",
        "CHAT_EVENT_KIND_AGENT_JOINED",
        "CHAT_EVENT_KIND_FIRST_ANSWER",
        "CHAT_EVENT_KIND_HANDED_OVER",
        "CHAT_EVENT_KIND_AGENT_JOINED",
        "CHAT_EVENT_KIND_CLOSED",
    ]
    requested = events[0]
    assert requested.verification_id and requested.appeal_id == chat["appeal_id"]
    assert requested.first_answer_due_at.ToDatetime().timestamp() == pytest.approx(due.timestamp())
    assert events[-1].resolution == "access_restored" and events[-1].agent_id == "agent-2"
    for event in events:
        raw = event.SerializeToString()
        for text in (SECRET_WORDS, "Which phone", "The old one", "looking into"):
            assert text.encode() not in raw

    # The store keeps no text in the clear and no user id on the chat.
    stored = await helpdesk.db[MESSAGES].find({"_id": {"$regex": f"^{chat_id}:"}}).to_list(None)
    assert len(stored) >= 5
    raw_store = repr(stored) + repr(await helpdesk.db[CHATS].find_one({"_id": chat_id}))
    for text in ("Sonnenblume77", "Which phone", "The old one", "looking into", "ig-dev-lena"):
        assert text not in raw_store

    # Forgetting the person erases the transcript (its key is gone).
    assert helpdesk.chats is not None
    assert await helpdesk.chats.forget_person("instagram", "ig-dev-lena")
    assert await helpdesk.db[PERSON_KEYS].count_documents({}) == 0
    erased = await helpdesk.agent(
        "GET", chat_id, "updates", params={"agent_id": "agent-2", "wait_s": 0}
    )
    assert erased.status_code == 200, erased.text
    assert {m["text"] for m in erased.json()["messages"]} == {"[erased]"}


async def test_concurrent_writers_number_messages_without_gaps(helpdesk: LiveHelp) -> None:
    token = await helpdesk.session_token(*AMARA)
    chat_id = (await open_chat(helpdesk, token, topic="feature_help")).json()["chat_id"]
    assert (
        await helpdesk.agent("POST", chat_id, "assignment", json={"agent_id": "agent-3"})
    ).status_code == 200

    async def person(n: int) -> httpx.Response:
        return await helpdesk.client.post(
            f"/v1/help/chats/{chat_id}/messages",
            json={"client_id": f"p-{n}", "text": f"person {n}"},
            headers=bearer(token),
        )

    async def agents(n: int) -> httpx.Response:
        body = {"agent_id": "agent-3", "client_id": f"a-{n}", "text": f"agent {n}"}
        return await helpdesk.agent("POST", chat_id, "messages", json=body)

    # Each message twice at once (a resend racing its first send): stored once each.
    sent = await asyncio.gather(*[send(n) for n in range(6) for send in (person, agents) * 2])
    assert all(response.is_success for response in sent), [r.text for r in sent]
    everything = await helpdesk.client.get(
        f"/v1/help/chats/{chat_id}/updates", params={"wait_s": 0}, headers=bearer(token)
    )
    messages = everything.json()["messages"]
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    texts = [m["text"] for m in messages if m["party"] != "system"]
    assert sorted(texts) == sorted(
        [f"person {n}" for n in range(6)] + [f"agent {n}" for n in range(6)]
    )


async def test_a_second_session_attaches_the_open_appeal_and_cannot_read_the_first_chat(
    helpdesk: LiveHelp,
) -> None:
    first_token = await helpdesk.session_token(*LENA)
    second_token = await helpdesk.session_token(*LENA)
    first = await open_chat(helpdesk, first_token, topic="account_access")
    second = await open_chat(helpdesk, second_token, topic="account_access")
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["chat_id"] != second.json()["chat_id"]
    # Intake's 409 appeal_already_open named the account's open appeal: the same one.
    assert second.json()["appeal_id"] == first.json()["appeal_id"] != ""

    chat_id = first.json()["chat_id"]
    for path in ("", "/updates"):
        foreign = await helpdesk.client.get(
            f"/v1/help/chats/{chat_id}{path}", params={"wait_s": 0}, headers=bearer(second_token)
        )
        assert foreign.status_code == 404
    foreign_post = await helpdesk.client.post(
        f"/v1/help/chats/{chat_id}/messages",
        json={"client_id": "x", "text": "hi"},
        headers=bearer(second_token),
    )
    assert foreign_post.status_code == 404
    assert (
        await helpdesk.client.get("/v1/help/chats/ch_" + "x" * 24, headers=bearer(first_token))
    ).status_code == 404

    # The person closes their chat; then they may open a new one.
    closed = await helpdesk.client.post(
        f"/v1/help/chats/{chat_id}/close", json={}, headers=bearer(first_token)
    )
    assert (closed.json()["state"], closed.json()["resolution"]) == ("closed", "closed_by_person")
    assert (await open_chat(helpdesk, first_token, topic="feature_help")).status_code == 201


async def test_the_internal_api_takes_only_routing_relay_tokens(helpdesk: LiveHelp) -> None:
    token = await helpdesk.session_token(*AMARA)
    chat_id = (await open_chat(helpdesk, token, topic="feature_help", feature="stories")).json()[
        "chat_id"
    ]
    path = f"/internal/v1/chats/{chat_id}"
    assert (await helpdesk.client.get(path)).status_code == 401
    assert (await helpdesk.client.get(path, headers=bearer(token))).status_code == 401
    assert (
        await helpdesk.client.get(path, headers=helpdesk.relay_headers(scopes=[]))
    ).status_code == 403
    agent_token = helpdesk.relay_headers(role="agent", scopes=["chats:relay"])
    assert (await helpdesk.client.get(path, headers=agent_token)).status_code == 403
    allowed = await helpdesk.client.get(path, headers=helpdesk.relay_headers())
    assert (allowed.status_code, allowed.json()["topic"], allowed.json()["appeal_id"]) == (
        200, "feature_help", ""
    )  # fmt: skip
    bad = await open_chat(helpdesk, token, topic="gossip", language="english")
    assert bad.status_code == 400
    assert {v["name"] for v in bad.json()["invalid_params"]} == {"topic", "language"}
    empty = await helpdesk.client.post(
        f"/v1/help/chats/{chat_id}/messages",
        json={"client_id": "p-1", "text": " \x00\x07 "},
        headers=bearer(token),
    )
    assert empty.status_code == 400


async def test_an_open_fails_whole_when_intake_is_unreachable(
    db: store.Database, tmp_path: Path, producer: EventProducer
) -> None:
    async with live_help(db, tmp_path, producer=producer) as helpdesk:  # no intake answers
        token = await helpdesk.session_token(*LENA)
        refused = await open_chat(helpdesk, token, topic="account_access")
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        # Nothing half-done waits: the session may open (here feature help) right away.
        assert await db[CHATS].count_documents({}) == 0
        assert (await open_chat(helpdesk, token, topic="feature_help")).status_code == 201


async def test_an_account_without_a_decision_gets_feature_help_only(
    db: store.Database, tmp_path: Path, producer: EventProducer
) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "accounts:\n  - {platform: instagram, user_id: ig-dev-nodecision, handle: no.decision,"
        " locale: en-US, status: restricted}\n"
    )
    async with live_help(db, tmp_path, producer=producer, accounts_file=accounts) as helpdesk:
        token = await helpdesk.session_token("instagram", "no.decision")
        refused = await open_chat(helpdesk, token, topic="account_access")
        assert (refused.status_code, refused.json()["code"]) == (422, "nothing_to_appeal")
        assert (await open_chat(helpdesk, token, topic="feature_help")).status_code == 201


async def test_the_page_chats_over_a_websocket(helpdesk: LiveHelp) -> None:
    token = await helpdesk.session_token(*AMARA)
    opened = await open_chat(helpdesk, token, topic="feature_help", message="Reels do not load")
    chat_id = opened.json()["chat_id"]
    assert (
        await helpdesk.agent("POST", chat_id, "assignment", json={"agent_id": "agent-7"})
    ).status_code == 200

    async def frame(socket: Any) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(socket.recv(), 10)))

    async with served(helpdesk.app) as base:
        async with connect(f"{base}/v1/help/chats/{chat_id}/socket") as socket:
            await socket.send(json.dumps({"type": "hello", "token": token, "after": 1}))
            hello = await frame(socket)
            assert hello["type"] == "updates" and hello["state"]["state"] == "assigned"
            assert [m["seq"] for m in hello["messages"]] == [2]  # after what it holds

            await socket.send(json.dumps({"type": "send", "client_id": "w-1", "text": "Hi!"}))
            pushed = await frame(socket)
            while not pushed.get("messages"):
                pushed = await frame(socket)
            assert [(m["seq"], m["text"]) for m in pushed["messages"]] == [(3, "Hi!")]

            answer = {"agent_id": "agent-7", "client_id": "a-1", "text": "Try clearing the cache"}
            assert (await helpdesk.agent("POST", chat_id, "messages", json=answer)).is_success
            pushed = await frame(socket)
            while not pushed.get("messages"):
                pushed = await frame(socket)
            assert pushed["messages"][0]["text"] == "Try clearing the cache"

            await socket.send(json.dumps({"type": "dance"}))
            error = await frame(socket)
            while error["type"] != "error":
                error = await frame(socket)
            await socket.send(json.dumps({"type": "typing"}))
            await socket.send(json.dumps({"type": "read", "up_to": 4}))
            # Receipts are updates too: the person's page sees its own read mark come back.
            receipts = await frame(socket)
            while receipts.get("receipts", {}).get("person_read") != 4:
                receipts = await frame(socket)
            assert receipts["receipts"]["person_typing"] is True

        seen = await helpdesk.agent("GET", chat_id, "updates",
            params={"agent_id": "agent-7", "after": 4, "wait_s": 0},
        )  # fmt: skip
        assert seen.json()["receipts"]["person_read"] == 4

        async with connect(f"{base}/v1/help/chats/{chat_id}/socket") as socket:
            await socket.send(json.dumps({"type": "hello", "token": token[:-4] + "AAAA"}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
