"""Live chat across the stack's own processes (issue 17 item 2): a locked-out person, verified by
a code sent to the contact on file, opens a chat over live help's API; routing offers it on the
desk; an agent accepts it over gRPC, answers, and decides the appeal the chat opened, which then
flows through decide -> notify -> audit, and shows in the person's chat even though the agent
closed it at once. The person resumes after a dropped connection and loses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest

from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2, chat_pb2
from tests.e2e.conftest import Pipeline
from tests.support import live_chat
from tests.support.live_chat import frames, offered
from tests.support.pipeline import register_senior_for_everything
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

# A DEVELOPMENT-ONLY sample account (services/help/dev_accounts.yaml) no other e2e test asks for:
# code requests per account are limited.
ACCOUNT = {"platform": "facebook", "account": "amara.okafor"}


async def help_session(client: httpx.AsyncClient, pipeline: Pipeline) -> dict[str, str]:
    """A live-help session for the chat account."""
    return await live_chat.help_session(
        client, pipeline.url("help"), pipeline.infra.mongodb_url, pipeline.database, ACCOUNT
    )


async def test_a_person_chats_with_an_agent_who_decides_their_appeal(pipeline: Pipeline) -> None:
    help_url = pipeline.url("help")
    metadata = (("authorization", f"Bearer {pipeline.agent_token('chat-agent-e2e')}"),)
    async with (
        httpx.AsyncClient(timeout=30) as client,
        grpc.aio.insecure_channel(pipeline.desk_grpc) as channel,
    ):
        person = await help_session(client, pipeline)
        opened = await client.post(
            f"{help_url}/v1/help/chats",
            json={"topic": "account_access", "language": "en", "message": "I am locked out."},
            headers=person,
        )
        assert opened.status_code in (200, 201), opened.text
        chat = opened.json()
        chat_id, appeal_id = chat["chat_id"], chat["appeal_id"]
        assert appeal_id and chat["state"] == "waiting"

        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
        await register_senior_for_everything(desk, metadata)
        offer = await offered(desk, metadata, chat_id)
        assert offer.appeal_id == appeal_id
        assert offer.platform == appeal_pb2.PLATFORM_FACEBOOK
        accepted = await desk.AcceptChat(
            agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=metadata
        )
        assert accepted.chat.chat_id == chat_id

        outgoing: asyncio.Queue[agent_desk_pb2.ChatClientFrame | None] = asyncio.Queue()
        await outgoing.put(
            agent_desk_pb2.ChatClientFrame(join=agent_desk_pb2.ChatJoin(chat_id=chat_id))
        )
        session = desk.ChatSession(frames(outgoing), metadata=metadata)
        seen: list[chat_pb2.ChatMessage] = []

        async def agent_reads_until(text: str) -> None:
            async with asyncio.timeout(30):
                async for frame in session:
                    if frame.HasField("message"):
                        seen.append(frame.message)
                        if frame.message.text == text:
                            return

        await agent_reads_until("I am locked out.")
        await outgoing.put(
            agent_desk_pb2.ChatClientFrame(
                send=agent_desk_pb2.ChatSend(client_id="a-1", text="Hello, I can help with that.")
            )
        )

        # The person long-polls, as the page does when WebSockets do not get through.
        async def agent_answer_after(after: int) -> list[dict[str, Any]] | None:
            response = await client.get(
                f"{help_url}/v1/help/chats/{chat_id}/updates",
                params={"after": after, "wait_s": 5},
                headers=person,
            )
            assert response.status_code == 200, response.text
            messages = [m for m in response.json()["messages"] if m["party"] == "agent"]
            return messages or None

        answer = await eventually(lambda: agent_answer_after(0), "the agent's answer", 30)
        assert answer[0]["text"] == "Hello, I can help with that."
        # Resuming after everything up to the answer finds nothing lost and nothing repeated.
        everything = (
            await client.get(
                f"{help_url}/v1/help/chats/{chat_id}/updates",
                params={"after": 0, "wait_s": 0},
                headers=person,
            )
        ).json()["messages"]
        seqs = [m["seq"] for m in everything]
        assert seqs == list(range(1, len(seqs) + 1))
        rest = (
            await client.get(
                f"{help_url}/v1/help/chats/{chat_id}/updates",
                params={"after": answer[0]["seq"] - 1, "wait_s": 0},
                headers=person,
            )
        ).json()["messages"]
        assert [m["seq"] for m in rest] == seqs[answer[0]["seq"] - 1 :]

        # The decision on the chat's appeal, through the desk as any decision.
        if not accepted.case_claimed:

            async def claimed() -> bool | None:
                try:
                    await desk.Claim(
                        agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=metadata
                    )
                except grpc.aio.AioRpcError:
                    return None
                return True

            await eventually(claimed, "the chat's appeal to be claimable", 30)
        decided = await desk.Decide(
            agent_desk_pb2.DecideRequest(
                appeal_id=appeal_id,
                outcome=appeal_pb2.OUTCOME_OVERTURNED,
                rationale="You showed you control the account; the lock is lifted.",
                policy_cited="compromised_account",
                facts="Verified by a code sent to the email address on file; chat " + chat_id,
            ),
            metadata=metadata,
        )
        assert decided.outcome == appeal_pb2.OUTCOME_OVERTURNED
        await desk.CloseChat(
            agent_desk_pb2.CloseChatRequest(chat_id=chat_id, resolution="access_restored"),
            metadata=metadata,
        )
        await outgoing.put(None)
        session.cancel()

        ops = {"Authorization": f"Bearer {pipeline.ops_token()}"}

        await live_chat.decision_notice(
            client, pipeline.url("notifications"), pipeline.ops_token(), appeal_id
        )

        async def chat_in_trail() -> list[str] | None:
            trail = await client.get(
                f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail", headers=ops
            )
            kinds = [entry["type"] for entry in trail.json().get("entries", [])]
            wanted = {"chat_requested", "chat_agent_joined", "chat_closed", "decided"}
            return kinds if wanted <= set(kinds) else None

        # The person sees the decision in the chat (live help reads it off the lifecycle topic),
        # though the agent closed the chat right after deciding.
        async def decision_in_chat() -> list[dict[str, Any]] | None:
            response = await client.get(
                f"{help_url}/v1/help/chats/{chat_id}/updates",
                params={"after": 0, "wait_s": 0},
                headers=person,
            )
            said = [m for m in response.json()["messages"] if m["outcome"]]
            return said or None

        (shown,) = await eventually(decision_in_chat, "the decision in the person's chat", 60)
        assert (shown["party"], shown["outcome"]) == ("system", "overturned")
        assert "access to your account is restored" in shown["text"]

        kinds = await eventually(chat_in_trail, "the chat's events in the audit trail", 60)
        assert "chat_first_answer" in kinds
        closed = (await client.get(f"{help_url}/v1/help/chats/{chat_id}", headers=person)).json()
        assert closed["state"] == "closed" and closed["resolution"] == "access_restored"
        assert any(m.party == chat_pb2.CHAT_PARTY_PERSON for m in seen)
