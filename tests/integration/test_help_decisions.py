"""The person sees the decision on their appeal in the chat (issue 17 acceptance: the person
"receive[s] the agent's decision and the notification"), on the real store and broker with
intake's real app in process: a ``decided`` event on the lifecycle topic makes live help's
consumer append a system message saying the outcome, in each chat's language, to every chat
attached to the appeal, open or closed; once per event however often it is delivered, encrypted
like every message; every other event is ignored without a store command, and what is read is
read by ``_id``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from appeals import topics
from appeals.events import new_event
from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import RateLimiter
from services.help.accounts import FileDirectory
from services.help.chat_repository import APPEAL_PERSONS, MESSAGES, ChatRepository
from services.help.chats import Chats
from services.help.config import DEV_ACCOUNTS_FILE
from services.help.consumer import lifecycle_handler
from services.help.decisions import TEXTS
from services.help.erasure import ChatErasures
from services.help.intake_client import IntakeClient
from services.help.service import Keys
from tests.support.live_help import (
    CHAT_LIMITS,
    GENEROUS,
    LiveHelp,
    bearer,
    lifecycle_consumer_running,
)
from tests.support.store_commands import CommandLog, names_the_id, watched_client
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

LENA = ("instagram", "lena.k")  # DEVELOPMENT-ONLY sample account with a decision on it
KEY = b"k" * 32  # the transcripts' key of tests.support.live_help


def decided(
    appeal_id: str, outcome: appeal_pb2.Outcome.ValueType, **fields: Any
) -> events_pb2.AppealEvent:
    return new_event(
        event_id=f"{appeal_id}:decided:{uuid.uuid4().hex[:8]}",
        appeal_id=appeal_id,
        producer="routing",
        decided=events_pb2.AppealDecided(
            agent_id="agent-1", outcome=outcome, rationale="The lock was a mistake.", **fields
        ),
    )


def inbound(event: events_pb2.AppealEvent) -> InboundMessage[events_pb2.AppealEvent]:
    return InboundMessage(topics.APPEAL_LIFECYCLE.name, 0, 0, event.appeal_id, event, {}, 0)


async def persons_view(helpdesk: LiveHelp, chat_id: str, session: str) -> list[dict[str, Any]]:
    seen = await helpdesk.client.get(
        f"/v1/help/chats/{chat_id}/updates", params={"wait_s": 0}, headers=bearer(session)
    )
    assert seen.status_code == 200, seen.text
    messages: list[dict[str, Any]] = seen.json()["messages"]
    return messages


def decisions_in(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["party"] == "system" and m["outcome"]]


async def open_chat(helpdesk: LiveHelp, session: str, language: str) -> dict[str, Any]:
    opened = await helpdesk.client.post(
        "/v1/help/chats",
        json={"topic": "account_access", "language": language, "message": "Ich komme nicht rein"},
        headers=bearer(session),
    )
    assert opened.status_code == 201, opened.text
    chat: dict[str, Any] = opened.json()
    return chat


@pytest.fixture
def erasures(helpdesk: LiveHelp) -> ChatErasures:
    assert helpdesk.chats is not None
    return ChatErasures(
        ChatRepository(helpdesk.db, Keys.derive(KEY).transcripts),
        helpdesk.chats.person,
        clock=helpdesk.clock,
    )


@pytest.fixture
async def watched(
    infra: Infrastructure, db: store.Database, producer: EventProducer
) -> AsyncIterator[tuple[Chats, CommandLog]]:
    """Live help's chats on the test's database through a client whose commands are recorded."""
    client, commands = watched_client(infra.mongodb_url)
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as nowhere:
        chats = Chats(
            ChatRepository(client[db.name], Keys.derive(KEY).transcripts),
            FileDirectory(DEV_ACCOUNTS_FILE),
            IntakeClient(nowhere, "http://127.0.0.1:9", None),
            producer,
            Keys.derive(KEY),
            RateLimiter(dict.fromkeys(CHAT_LIMITS, GENEROUS)),
            first_answer_sla=timedelta(seconds=120),
            max_chars=2000,
        )
        try:
            yield chats, commands
        finally:
            await client.close()


async def test_the_decision_shows_in_every_chat_of_the_appeal_in_its_language_once(
    helpdesk: LiveHelp,
    erasures: ChatErasures,
    infra: Infrastructure,
    producer: EventProducer,
) -> None:
    assert helpdesk.chats is not None
    # Two sessions of the same person, one chat each on the account's one appeal: one in
    # German, taken by an agent; one in English, which the person already closed.
    german_session = await helpdesk.session_token(*LENA)
    german = await open_chat(helpdesk, german_session, "de")
    taken = await helpdesk.agent(
        "POST", german["chat_id"], "assignment", json={"agent_id": "agent-1"}
    )
    assert taken.status_code == 200, taken.text
    english_session = await helpdesk.session_token(*LENA)
    english = await open_chat(helpdesk, english_session, "en")
    assert english["appeal_id"] == german["appeal_id"] != ""
    closed = await helpdesk.client.post(
        f"/v1/help/chats/{english['chat_id']}/close", json={}, headers=bearer(english_session)
    )
    assert closed.json()["state"] == "closed"
    appeal_id = german["appeal_id"]

    # The agent decides: routing's decided event on the lifecycle topic, read by live help's
    # consumer (a group of its own, from the start of the topic) on the real broker.
    event = decided(appeal_id, appeal_pb2.OUTCOME_OVERTURNED)
    async with lifecycle_consumer_running(
        erasures, helpdesk.chats, bootstrap_servers=infra.kafka_bootstrap_servers, producer=producer
    ):
        await producer.publish(topics.APPEAL_LIFECYCLE, event)

        async def shown() -> list[dict[str, Any]] | None:
            found = decisions_in(await persons_view(helpdesk, german["chat_id"], german_session))
            return found or None

        (in_german,) = await eventually(shown, "the decision in the German chat")
        # Delivered again (a consumer restarted before its commit): still said once.
        await producer.publish(topics.APPEAL_LIFECYCLE, event)
        await helpdesk.chats.announce_decision(appeal_id, event.event_id, "overturned")

    assert in_german["outcome"] == "overturned"
    assert in_german["text"] == TEXTS["overturned"]["de"]
    assert in_german["client_id"] == f"system:decided:{event.event_id}"
    (in_english,) = decisions_in(await persons_view(helpdesk, english["chat_id"], english_session))
    assert (in_english["outcome"], in_english["text"]) == ("overturned", TEXTS["overturned"]["en"])
    # After the close: the closed chat's transcript says the decision after its end.
    english_view = await persons_view(helpdesk, english["chat_id"], english_session)
    english_texts = [m["text"] for m in english_view]
    assert english_texts.index(in_english["text"]) > english_texts.index("The chat was closed.")
    # The agent sees it too (the relay carries system messages to the desk).
    agents = await helpdesk.agent(
        "GET", german["chat_id"], "updates", params={"agent_id": "agent-1", "wait_s": 0}
    )
    assert decisions_in(agents.json()["messages"]) == [in_german]
    # The messages' seqs still run without gaps.
    german_view = await persons_view(helpdesk, german["chat_id"], german_session)
    german_seqs = [m["seq"] for m in german_view]
    assert german_seqs == list(range(1, len(german_seqs) + 1))

    # A later decision (an external body's, on a referral) is said too, as a message of its own.
    handle = lifecycle_handler(erasures, helpdesk.chats)
    await handle(inbound(decided(appeal_id, appeal_pb2.OUTCOME_UPHELD, referral_body="ods:x")))
    later = decisions_in(await persons_view(helpdesk, german["chat_id"], german_session))
    assert [m["outcome"] for m in later] == ["overturned", "upheld"]
    assert later[1]["text"] == TEXTS["upheld"]["de"]

    # Encrypted like every message; the outcome is no secret (the lifecycle topic says it).
    stored = await helpdesk.db[MESSAGES].find_one(
        {"_id": f"{german['chat_id']}:{in_german['seq']:010d}"}
    )
    assert stored is not None and stored["outcome"] == "overturned"
    assert b"wiederhergestellt" not in bytes(stored["text"])
    assert "wiederhergestellt" not in repr(stored)


async def test_other_events_touch_nothing_and_a_decision_reads_by_id_only(
    helpdesk: LiveHelp, erasures: ChatErasures, watched: tuple[Chats, CommandLog]
) -> None:
    chats, commands = watched
    session = await helpdesk.session_token(*LENA)
    chat = await open_chat(helpdesk, session, "en")
    handle = lifecycle_handler(erasures, chats)

    # Every other kind of lifecycle event: not a single store command.
    payloads = events_pb2.AppealEvent.DESCRIPTOR.oneofs_by_name["payload"].fields
    others = {
        payload.name: getattr(events_pb2, payload.message_type.name)
        for payload in payloads
        if payload.name not in ("decided", "particulars_erased") and payload.message_type
    }
    assert len(others) >= 10
    commands.clear()
    for name, message in others.items():
        event = new_event(
            event_id=f"{chat['appeal_id']}:{name}", appeal_id=chat["appeal_id"],
            producer="tests", **{name: message()},
        )  # fmt: skip
        await handle(inbound(event))
    assert commands.commands == []

    # A decided event naming no appeal, no outcome or no event id goes to the DLQ (the runner's
    # policy for InvalidMessage), before any store command.
    broken = decided(chat["appeal_id"], appeal_pb2.OUTCOME_UPHELD)
    changes: list[tuple[Callable[[events_pb2.AppealEvent], None], str]] = [
        (lambda e: e.ClearField("appeal_id"), "appeal_id"),
        (lambda e: e.decided.ClearField("outcome"), "decided.outcome"),
        (lambda e: e.ClearField("event_id"), "event_id"),
    ]
    for change, lacking in changes:
        event = events_pb2.AppealEvent()
        event.CopyFrom(broken)
        change(event)
        with pytest.raises(InvalidMessage) as invalid:
            await handle(inbound(event))
        assert invalid.value.field == lacking
    assert commands.commands == []

    # A decision on an appeal without a chat: one read, by _id.
    await handle(inbound(decided(f"ap_{uuid.uuid4().hex}", appeal_pb2.OUTCOME_UPHELD)))
    assert [(c.name, c.collection) for c in commands.commands] == [("find", APPEAL_PERSONS)]
    assert all(names_the_id(query) for _, query in commands.selecting())

    # A decision on the chat's appeal: every command names its documents by _id (or inserts).
    commands.clear()
    await handle(inbound(decided(chat["appeal_id"], appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED)))
    assert commands.commands, "the decision was written"
    unnamed = [(c.name, c.collection, q) for c, q in commands.selecting() if not names_the_id(q)]
    assert unnamed == []
    (said,) = decisions_in(await persons_view(helpdesk, chat["chat_id"], session))
    assert said["outcome"] == "partially_overturned"


async def test_a_link_noted_before_chats_were_listed_shows_nothing_and_fails_nothing(
    helpdesk: LiveHelp, db: store.Database
) -> None:
    assert helpdesk.chats is not None
    # A link as live help noted it before it listed the appeal's chats: the person only.
    await db[APPEAL_PERSONS].insert_one({"_id": "ap_oldlink", "person": "p"})
    assert await helpdesk.chats.announce_decision("ap_oldlink", "ev-1", "upheld") == 0
    # So does a link whose chats the retention sweep deleted.
    await db[APPEAL_PERSONS].insert_one({"_id": "ap_swept", "person": "p", "chats": ["ch_gone"]})
    assert await helpdesk.chats.announce_decision("ap_swept", "ev-2", "upheld") == 0
