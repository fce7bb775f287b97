"""Forgetting a person's live-help transcripts (issue 17 item 4), on the real store and broker
with intake's real app in process: intake's ``particulars_erased`` on the lifecycle topic makes
the transcripts of the chats attached to that appeal read "[erased]" (live help's consumer), and
``POST /v1/help/erasures`` forgets a person named by platform and user id; nobody else's
transcript changes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals import topics
from appeals.events import new_event
from appeals.v1 import events_pb2
from appeals_devstack import devkeys
from appeals_devstack.stack import Infrastructure
from appeals_runtime.http import PROBLEM_JSON
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.help.chat_repository import APPEAL_PERSONS, PERSON_KEYS, ChatRepository
from services.help.consumer import lifecycle_handler
from services.help.erasure import ChatErasures
from services.help.erasure_api import erasure_router
from services.help.service import Keys
from tests.support.live_help import LiveHelp, bearer, lifecycle_consumer_running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

LENA = ("instagram", "lena.k")  # DEVELOPMENT-ONLY sample accounts with a decision on them
LENA_USER_ID = "ig-dev-lena"
AMARA = ("facebook", "amara.okafor")
ERASED = "[erased]"


@pytest.fixture
def erasures(helpdesk: LiveHelp) -> ChatErasures:
    assert helpdesk.chats is not None
    repository = ChatRepository(helpdesk.db, Keys.derive(b"k" * 32).transcripts)
    return ChatErasures(repository, helpdesk.chats.person, clock=helpdesk.clock)


def token(helpdesk: LiveHelp, role: str, **claims: Any) -> str:
    return devkeys.mint_token(helpdesk.signing_key, role=role, subject=f"{role}-tests", **claims)


async def agents_view(helpdesk: LiveHelp, chat_id: str, agent_id: str) -> list[str]:
    seen = await helpdesk.agent(
        "GET", chat_id, "updates", params={"agent_id": agent_id, "wait_s": 0}
    )
    assert seen.status_code == 200, seen.text
    return [m["text"] for m in seen.json()["messages"]]


async def persons_view(helpdesk: LiveHelp, chat_id: str, session: str) -> list[str]:
    seen = await helpdesk.client.get(
        f"/v1/help/chats/{chat_id}/updates", params={"wait_s": 0}, headers=bearer(session)
    )
    assert seen.status_code == 200, seen.text
    return [m["text"] for m in seen.json()["messages"]]


def erased_event(appeal_id: str) -> events_pb2.AppealEvent:
    return new_event(
        event_id=f"{appeal_id}:particulars_erased",
        appeal_id=appeal_id,
        producer="intake",
        particulars_erased=events_pb2.ParticularsErased(
            erasure_id=f"er_{uuid.uuid4().hex[:24]}", requested_by="instagram-app"
        ),
    )


def inbound(event: events_pb2.AppealEvent) -> InboundMessage[events_pb2.AppealEvent]:
    return InboundMessage(topics.APPEAL_LIFECYCLE.name, 0, 0, event.appeal_id, event, {}, 0)


async def test_an_erased_appeal_erases_the_transcripts_of_its_person_and_no_others(
    helpdesk: LiveHelp,
    erasures: ChatErasures,
    infra: Infrastructure,
    producer: EventProducer,
) -> None:
    lena, lena_session = await helpdesk.answered_chat(LENA, "account_access", "agent-1")
    amara, amara_session = await helpdesk.answered_chat(AMARA, "account_access", "agent-2")
    assert lena["appeal_id"] and amara["appeal_id"]
    amara_before = await agents_view(helpdesk, amara["chat_id"], "agent-2")
    assert "help, says amara.okafor" in amara_before

    # Live help's consumer, in a group of its own, from the start of the topic.
    assert helpdesk.chats is not None
    async with lifecycle_consumer_running(
        erasures, helpdesk.chats, bootstrap_servers=infra.kafka_bootstrap_servers, producer=producer
    ):
        await producer.publish(topics.APPEAL_LIFECYCLE, erased_event(lena["appeal_id"]))

        async def erased() -> bool:
            return set(await agents_view(helpdesk, lena["chat_id"], "agent-1")) == {ERASED}

        await eventually(erased, "Lena's transcript erased for the agent")
    assert set(await persons_view(helpdesk, lena["chat_id"], lena_session)) == {ERASED}
    assert await helpdesk.db[APPEAL_PERSONS].find_one({"_id": lena["appeal_id"]}) is None
    # Amara's transcript reads as before, for the agent and for her.
    assert await agents_view(helpdesk, amara["chat_id"], "agent-2") == amara_before
    assert await persons_view(helpdesk, amara["chat_id"], amara_session) == amara_before
    assert await helpdesk.db[PERSON_KEYS].count_documents({}) == 1

    # The same event again, and events of every other kind, change nothing.
    handle = lifecycle_handler(erasures, helpdesk.chats)
    await handle(inbound(erased_event(lena["appeal_id"])))
    routed = new_event(
        event_id=f"{amara['appeal_id']}:routed", appeal_id=amara["appeal_id"], producer="routing",
        routed=events_pb2.AppealRouted(queue="accounts"),
    )  # fmt: skip
    await handle(inbound(routed))
    assert await agents_view(helpdesk, amara["chat_id"], "agent-2") == amara_before
    assert await helpdesk.db[APPEAL_PERSONS].find_one({"_id": amara["appeal_id"]}) is not None


async def test_ops_or_a_surface_of_the_platform_forget_a_person_through_the_api(
    helpdesk: LiveHelp, erasures: ChatErasures, tmp_path: Path
) -> None:
    assert helpdesk.app is not None
    verifier = devkeys.dev_verifier(devkeys.ensure(tmp_path)[1])
    helpdesk.app.include_router(erasure_router(erasures, verifier))
    # Feature help: no appeal, so only this way reaches the person.
    lena, lena_session = await helpdesk.answered_chat(LENA, "feature_help", "agent-1")
    amara, _ = await helpdesk.answered_chat(AMARA, "feature_help", "agent-2")
    amara_before = await agents_view(helpdesk, amara["chat_id"], "agent-2")
    body = {"platform": "instagram", "user_id": LENA_USER_ID}

    async def erase(json: Any, headers: dict[str, str]) -> httpx.Response:
        return await helpdesk.client.post("/v1/help/erasures", json=json, headers=headers)

    anonymous = await erase(body, {})
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["content-type"] == PROBLEM_JSON
    assert anonymous.headers["www-authenticate"] == "Bearer"
    # Refused before the body is read: a refused caller learns nothing of a valid one.
    for refused in (
        token(helpdesk, "agent", queues=["*"]),
        token(helpdesk, "auditor"),
        token(helpdesk, "referral_body"),
        token(helpdesk, "service", scopes=devkeys.ROUTING_CHAT_RELAY_SCOPES),
    ):
        for sent in (body, {"nonsense": True}):
            answer = await erase(sent, bearer(refused))
            assert answer.status_code == 403, answer.text
            assert answer.headers["content-type"] == PROBLEM_JSON
    facebook = await erase(body, bearer(token(helpdesk, "surface", platforms=["facebook"])))
    assert facebook.status_code == 403, facebook.text
    assert facebook.headers["content-type"] == PROBLEM_JSON
    assert "LENA" not in facebook.text.upper() and LENA_USER_ID not in facebook.text

    ops = bearer(token(helpdesk, "ops"))
    for invalid, field in (
        ({"platform": "myspace", "user_id": LENA_USER_ID}, "platform"),
        ({"platform": "instagram", "user_id": "lena k"}, "user_id"),
        ({"platform": "instagram", "user_id": ""}, "user_id"),
        ({"platform": "instagram"}, "user_id"),
        ({**body, "reason": "asked"}, "reason"),
        ({"platform": "instagram", "user_id": 17}, "user_id"),
    ):
        answer = await erase(invalid, ops)
        assert answer.status_code == 400, (invalid, answer.text)
        assert answer.headers["content-type"] == PROBLEM_JSON
        named = {p["name"] for p in answer.json()["invalid_params"]}
        assert field in named, (invalid, answer.json())
    assert set(await agents_view(helpdesk, lena["chat_id"], "agent-1")) != {ERASED}

    instagram = bearer(token(helpdesk, "surface", platforms=["instagram"]))
    done = await erase(body, instagram)
    assert done.status_code == 200, done.text
    assert done.json()["forgotten"] is True and done.json()["erased_at"]
    assert set(await agents_view(helpdesk, lena["chat_id"], "agent-1")) == {ERASED}
    assert set(await persons_view(helpdesk, lena["chat_id"], lena_session)) == {ERASED}
    assert await agents_view(helpdesk, amara["chat_id"], "agent-2") == amara_before
    # Again, or for a person live help never knew: the same answer, with nothing forgotten.
    again = await erase(body, ops)
    assert (again.status_code, again.json()["forgotten"]) == (200, False)
    unknown = await erase({"platform": "instagram", "user_id": "never-here"}, instagram)
    assert (unknown.status_code, unknown.json()["forgotten"]) == (200, False)
    assert set(unknown.json()) == set(done.json()) == {"forgotten", "erased_at"}
