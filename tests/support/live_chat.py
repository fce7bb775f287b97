"""What the live-help end-to-end tests share: the code a contact on file received, typing into
the page, and the agent's side of a chat over the desk's gRPC API (offers, frames, deciding the
chat's appeal), and the notice of the decision the person was sent."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx

from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2
from appeals_runtime import store
from services.notifications.repository import CODES
from tests.support.browser import Page
from tests.support.waiting import eventually

CODE = re.compile(r"\b(\d{6})\b")


async def code_received(mongodb_url: str, database: str, verification_id: str) -> str:
    """The code notifications sent for a verification (its record keeps the text locally)."""
    client = store.create_client(mongodb_url, app_name="e2e-help")
    try:
        codes = client[store.service_database(database, "notifications")][CODES]

        async def recorded() -> str | None:
            found = await codes.find_one({"_id": verification_id})
            match = CODE.search(found["body"]) if found else None
            return match.group(1) if match else None

        return await eventually(recorded, "the code on the contact on file", 20)
    finally:
        await client.close()


async def help_session(
    client: httpx.AsyncClient,
    help_url: str,
    mongodb_url: str,
    database: str,
    account: dict[str, str],
) -> dict[str, str]:
    """The headers of a live-help session for ``account`` ({platform, account}), through the
    real code round trip (the code read from what the contact on file received)."""
    started = await client.post(f"{help_url}/v1/help/verifications", json=account)
    assert started.status_code == 202, started.text
    verification_id = started.json()["verification_id"]
    code = await code_received(mongodb_url, database, verification_id)
    checked = await client.post(
        f"{help_url}/v1/help/verifications/{verification_id}/check", json={"code": code}
    )
    assert checked.status_code == 200, checked.text
    return {"Authorization": f"Bearer {checked.json()['session_token']}"}


async def decision_notice(
    client: httpx.AsyncClient, notifications_url: str, ops_token: str, appeal_id: str
) -> dict[str, Any]:
    """The notification that told the appeal's person of its decision, once delivered (as
    notifications' ops API lists it: kind, channel, locale, the text sent)."""

    async def delivered() -> dict[str, Any] | None:
        response = await client.get(
            f"{notifications_url}/v1/appeals/{appeal_id}/notifications",
            headers={"Authorization": f"Bearer {ops_token}"},
        )
        notices = response.json().get("notifications", []) if response.is_success else []
        decided = [notice for notice in notices if notice["kind"] == "decided"]
        return decided[0] if decided else None

    found: dict[str, Any] = await eventually(delivered, "the person told of the decision", 60)
    return found


def fill(page: Page, field: str, value: str) -> None:
    page.evaluate(f"document.getElementById({json.dumps(field)}).value = {json.dumps(value)}")


async def offered(
    desk: agent_desk_pb2_grpc.AgentDeskStub, metadata: Any, chat_id: str
) -> agent_desk_pb2.ChatOffer:
    """Wait until the desk offers ``chat_id`` to the agent of ``metadata``."""
    stream = desk.StreamChats(agent_desk_pb2.StreamChatsRequest(), metadata=metadata)
    try:
        async with asyncio.timeout(60):
            async for offer in stream:
                if offer.chat_id == chat_id:
                    found: agent_desk_pb2.ChatOffer = offer
                    return found
    finally:
        stream.cancel()
    raise AssertionError(f"chat {chat_id} was never offered")


async def frames(
    outgoing: asyncio.Queue[agent_desk_pb2.ChatClientFrame | None],
) -> AsyncIterator[agent_desk_pb2.ChatClientFrame]:
    """A ChatSession's client frames, as a test puts them in ``outgoing`` (None ends them)."""
    while (frame := await outgoing.get()) is not None:
        yield frame


async def decide_chat_appeal(
    desk: agent_desk_pb2_grpc.AgentDeskStub,
    metadata: Any,
    appeal_id: str,
    outcome: appeal_pb2.Outcome.ValueType,
    *,
    policy: str,
) -> agent_desk_pb2.DecideResponse:
    """The agent decides the appeal a chat is attached to, through the desk as any decision:
    claimed first (a no-op when accepting the chat claimed it; until routing has routed the
    appeal, it is not claimable yet), then decided with its facts, as every decision states."""

    async def claimed() -> bool | None:
        try:
            await desk.Claim(agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=metadata)
        except grpc.aio.AioRpcError:
            return None
        return True

    await eventually(claimed, "the chat's appeal to be claimable", 30)
    decided: agent_desk_pb2.DecideResponse = await desk.Decide(
        agent_desk_pb2.DecideRequest(
            appeal_id=appeal_id,
            outcome=outcome,
            rationale="The person showed they control the account.",
            policy_cited=policy,
            facts="Verified by a code sent to the contact on file; talked it through in live chat.",
        ),
        metadata=metadata,
    )
    return decided
