"""The person's chat on live help's page in headless Chromium, against the stack's own
processes (issue 17 acceptance): verify with the code the contact on file received, open a chat,
read the agent's answer given over the desk's gRPC API, lose the connection mid-chat and miss
nothing, see an attachment as a link, see the chat end and, after it, the decision the agent
made on the appeal over gRPC, and the notice of it the person was sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2, chat_pb2
from tests.e2e.conftest import Pipeline
from tests.support.browser import Page, chromium
from tests.support.live_chat import (
    code_received,
    decide_chat_appeal,
    decision_notice,
    fill,
    frames,
    offered,
)

pytestmark = pytest.mark.e2e

# A DEVELOPMENT-ONLY sample account no other e2e test asks a code for.
PLATFORM, ACCOUNT = "horizon", "noor_vr"
FIRST = "My avatar is restricted and I do not know why."
LETTER = {
    "media_type": "application/pdf",
    "uri": "https://files.example.org/noor/id-letter.pdf",
    "size_bytes": 512 * 1024,
}


def agent_metadata(pipeline: Pipeline) -> Any:
    return (("authorization", f"Bearer {pipeline.agent_token('chat-page-agent')}"),)


async def agent_says(pipeline: Pipeline, chat_id: str, *texts: str, accept: bool) -> None:
    """Accept the chat (the first time), wait for the person's first message, say ``texts``."""
    metadata = agent_metadata(pipeline)
    async with grpc.aio.insecure_channel(pipeline.desk_grpc) as channel:
        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
        if accept:
            await desk.RegisterAgent(
                agent_desk_pb2.RegisterAgentRequest(
                    profile=agent_desk_pb2.AgentProfile(
                        languages=["*"], platforms=["*"], policy_areas=["*"], capacity=10
                    )
                ),
                metadata=metadata,
            )
            await offered(desk, metadata, chat_id)
            await desk.AcceptChat(
                agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=metadata
            )
        outgoing: asyncio.Queue[agent_desk_pb2.ChatClientFrame | None] = asyncio.Queue()
        await outgoing.put(
            agent_desk_pb2.ChatClientFrame(join=agent_desk_pb2.ChatJoin(chat_id=chat_id))
        )
        session = desk.ChatSession(frames(outgoing), metadata=metadata)
        async with asyncio.timeout(30):
            async for frame in session:
                if frame.HasField("message") and frame.message.text == FIRST:
                    break
        for number, text in enumerate(texts):
            client_id = f"{'first' if accept else 'later'}-{number}"
            send = agent_desk_pb2.ChatSend(client_id=client_id, text=text)
            await outgoing.put(agent_desk_pb2.ChatClientFrame(send=send))
        # Once the last one is back from live help, every one of them is stored.
        async with asyncio.timeout(30):
            async for frame in session:
                if frame.HasField("message") and frame.message.text == texts[-1]:
                    assert frame.message.party == chat_pb2.CHAT_PARTY_AGENT
                    break
        await outgoing.put(None)
        session.cancel()


async def agent_decides(pipeline: Pipeline, appeal_id: str) -> None:
    async with grpc.aio.insecure_channel(pipeline.desk_grpc) as channel:
        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
        decided = await decide_chat_appeal(
            desk, agent_metadata(pipeline), appeal_id, appeal_pb2.OUTCOME_OVERTURNED,
            policy="harassment",
        )  # fmt: skip
        assert decided.status == agent_desk_pb2.DECISION_STATUS_DECIDED


async def agent_closes(pipeline: Pipeline, chat_id: str) -> None:
    async with grpc.aio.insecure_channel(pipeline.desk_grpc) as channel:
        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
        await desk.CloseChat(
            agent_desk_pb2.CloseChatRequest(chat_id=chat_id, resolution="explained"),
            metadata=agent_metadata(pipeline),
        )


async def notice_of_decision(pipeline: Pipeline, appeal_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await decision_notice(
            client, pipeline.url("notifications"), pipeline.ops_token(), appeal_id
        )


def agent_texts(page: Page) -> list[str]:
    texts: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('#messages li.agent'), li => li.textContent)"
    )
    return texts


def test_a_person_chats_on_the_page_and_a_dropped_connection_loses_nothing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    with chromium(tmp_path / "chromium", width=900, height=900) as page:
        page.navigate(f"{pipeline.url('help')}/help")
        page.wait_for(
            "document.querySelectorAll('#platform option').length >= 4",
            timeout_s=20,
            what="the platforms to load",
        )
        fill(page, "platform", PLATFORM)
        fill(page, "account", ACCOUNT)
        page.evaluate("document.getElementById('ask').requestSubmit()")
        page.wait_for("!document.getElementById('check').hidden", timeout_s=20, what="code form")
        verification_id = page.evaluate("window.helpState.verification")
        fill(
            page,
            "code",
            asyncio.run(
                code_received(pipeline.infra.mongodb_url, pipeline.database, verification_id)
            ),
        )
        page.evaluate("document.getElementById('check').requestSubmit()")
        page.wait_for("!document.getElementById('verified').hidden", timeout_s=20, what="verified")

        fill(page, "first", FIRST)
        page.evaluate("document.getElementById('open').requestSubmit()")
        page.wait_for(
            "window.helpChat.transport === 'socket' && window.helpChat.lastSeq >= 1",
            timeout_s=20,
            what="the chat open over a WebSocket with the first message",
        )
        chat_id = page.evaluate("window.helpChat.id")
        asyncio.run(agent_says(pipeline, chat_id, "Hello, I am looking at it.", accept=True))
        page.wait_for(
            "Array.from(document.querySelectorAll('#messages li.agent'))"
            ".some(li => li.textContent === 'Hello, I am looking at it.')",
            timeout_s=20,
            what="the agent's answer on the page",
        )

        # The connection drops; the agent goes on meanwhile; the page reconnects and asks for
        # what came after the last message it showed.
        page.evaluate("window.helpChat.socket.close()")
        asyncio.run(
            agent_says(
                pipeline, chat_id, "It was restricted by mistake.", "Lifting it now.", accept=False
            )
        )
        page.wait_for(
            "document.querySelectorAll('#messages li.agent').length >= 3",
            timeout_s=30,
            what="the answers given while the page was away",
        )
        assert agent_texts(page) == [
            "Hello, I am looking at it.",
            "It was restricted by mistake.",
            "Lifting it now.",
        ]
        seqs = page.evaluate(
            "Array.from(document.querySelectorAll('#messages li[data-seq]'), li => +li.dataset.seq)"
        )
        assert seqs == list(range(1, len(seqs) + 1)), "every message once, in order"
        # The person's first message was read by the agent's desk session.
        page.wait_for(
            "document.querySelector('#messages li.person .mark').textContent === 'Read'"
            " || document.querySelector('#messages li.person .mark').textContent === 'Delivered'",
            timeout_s=20,
            what="the person's message marked delivered",
        )

        # A message with an attachment (sent by a client that hosts what it references: the
        # page itself has no upload) shows as a plain link on the page.
        status = page.evaluate(
            "fetch(`/v1/help/chats/${window.helpChat.id}/messages`, {method: 'POST',"
            " headers: {'Content-Type': 'application/json',"
            " Authorization: `Bearer ${window.helpState.token}`},"
            " body: JSON.stringify({client_id: 'evidence-1', text: 'My ID letter', attachments:"
            f" [{json.dumps(LETTER)}]}})}}).then(r => r.status)"
        )
        assert status == 201
        link = page.wait_for(
            "(() => { const a = document.querySelector('#messages li.person a.attachment');"
            " return a && [a.href, a.textContent, a.rel, a.target]; })()",
            timeout_s=20,
            what="the attachment shown as a link",
        )
        assert link == [LETTER["uri"], "application/pdf, 512 KB", "noopener noreferrer nofollow",
                        "_blank"]  # fmt: skip

        # The agent ends the chat, then decides the appeal the chat opened over the desk's gRPC
        # API: the page, told the chat ended, waits on for the decision and shows its outcome in
        # the chat, set apart from the messages and notices.
        appeal_id = page.evaluate("window.helpChat.appealId")
        assert appeal_id
        asyncio.run(agent_closes(pipeline, chat_id))
        page.wait_for(
            "document.getElementById('chat-status').textContent.includes('ended')",
            timeout_s=30,
            what="the chat shown as ended",
        )
        assert page.evaluate("window.helpChat.awaitingDecision") is True
        assert "decision on your appeal" in page.evaluate(
            "document.getElementById('chat-status').textContent"
        )
        asyncio.run(agent_decides(pipeline, appeal_id))
        page.wait_for(
            "Array.from(document.querySelectorAll('#messages li.decision'))"
            ".some(li => li.dataset.outcome === 'overturned')",
            timeout_s=60,
            what="the decision on the appeal shown in the chat",
        )
        decision = page.evaluate(
            "Array.from(document.querySelectorAll('#messages li.decision'), li => li.textContent)"
        )
        assert len(decision) == 1 and "access to your account is restored" in decision[0]
        assert agent_texts(page)[-1] == "Lifting it now.", "the decision is no agent's message"
        # Shown: nothing more to wait for, the connection is let go.
        page.wait_for(
            "window.helpChat.awaitingDecision === false && window.helpChat.socket === null",
            timeout_s=20,
            what="the page to stop listening once the decision showed",
        )
        # And, as every appellant is, the person was sent a notice of the decision.
        notice = asyncio.run(notice_of_decision(pipeline, appeal_id))
        assert notice["platform"] == PLATFORM and notice["body"], notice
