"""Live-help transcripts are kept for the configured time after their chat closed, then deleted
whole (issue 17 item 4), on the real store and broker with intake's real app in process: the
sweep reads what is due by ``_id``, keeps chats closed recently and open ones, and finishes what
a failed sweep left. The clock is the test's: nothing sleeps through days."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.query_log import QUERY_LOG_VARIABLE
from services.help.chat_repository import (
    APPEAL_PERSONS,
    CHATS,
    CLAIMS,
    CLIENT_IDS,
    CLOSED,
    MESSAGES,
    RECEIPTS,
    SWEPT_THROUGH,
    ChatRepository,
)
from services.help.retention import TranscriptRetention
from services.help.service import Keys
from tests.support.live_help import LiveHelp, bearer

pytestmark = pytest.mark.integration

RETENTION_DAYS = 30
LENA = ("instagram", "lena.k")  # DEVELOPMENT-ONLY sample accounts with a decision on them
AMARA = ("facebook", "amara.okafor")
NOOR = ("horizon", "noor_vr")


def sweeper(
    helpdesk: LiveHelp, db: store.Database | None = None
) -> tuple[TranscriptRetention, ChatRepository]:
    # The test's days are in the past: a help session minted at a clock time after the real
    # one would not be valid yet.
    helpdesk.clock.advance(-timedelta(days=3 * RETENTION_DAYS))
    repository = ChatRepository(
        helpdesk.db if db is None else db, Keys.derive(b"k" * 32).transcripts
    )
    return (
        TranscriptRetention(repository, retention_days=RETENTION_DAYS, clock=helpdesk.clock),
        repository,
    )


async def chat_with_messages(
    helpdesk: LiveHelp, account: tuple[str, str], topic: str, agent_id: str
) -> tuple[dict[str, Any], str]:
    """A chat the person opened with a message, an agent took and both wrote in."""
    chat, token = await helpdesk.answered_chat(account, topic, agent_id)
    answer = await helpdesk.client.post(
        f"/v1/help/chats/{chat['chat_id']}/messages",
        json={"client_id": "p-1", "text": "I cannot log in"},
        headers=bearer(token),
    )
    assert answer.status_code == 201, answer.text
    receipts = await helpdesk.client.post(
        f"/v1/help/chats/{chat['chat_id']}/receipts", json={"read_up_to": 3}, headers=bearer(token)
    )
    assert receipts.status_code == 204
    return chat, token


async def close(helpdesk: LiveHelp, chat_id: str, token: str) -> None:
    closed = await helpdesk.client.post(
        f"/v1/help/chats/{chat_id}/close", json={}, headers=bearer(token)
    )
    assert (closed.status_code, closed.json()["state"]) == (200, "closed"), closed.text


async def kept(db: store.Database, chat_id: str) -> dict[str, int]:
    """What the store holds of a chat, per collection (a test may scan)."""
    prefix = {"_id": {"$regex": f"^{chat_id}:"}}
    return {
        CHATS: await db[CHATS].count_documents({"_id": chat_id}),
        RECEIPTS: await db[RECEIPTS].count_documents({"_id": chat_id}),
        MESSAGES: await db[MESSAGES].count_documents(prefix),
        CLIENT_IDS: await db[CLIENT_IDS].count_documents(prefix),
        CLAIMS: await db[CLAIMS].count_documents(prefix),
    }


@pytest.fixture
async def logged_db(
    helpdesk: LiveHelp, infra: Infrastructure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[store.Database, Path]]:
    """The test's database through a client that logs the shape of each command it sends
    (appeals_runtime.query_log), and the folder of the log."""
    folder = tmp_path / "store-queries"
    monkeypatch.setenv(QUERY_LOG_VARIABLE, str(folder))
    client = store.create_client(infra.mongodb_url, app_name="help")
    try:
        yield client[helpdesk.db.name], folder
    finally:
        await client.close()


def logged(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "help.jsonl").read_text().splitlines()]


def scans(folder: Path) -> list[dict[str, Any]]:
    lines = logged(folder)
    assert lines
    return [line for line in lines if line["selects"] not in ("_id", "insert")]


async def test_chats_closed_longer_than_the_retention_ago_are_deleted_and_no_others(
    helpdesk: LiveHelp, logged_db: tuple[store.Database, Path]
) -> None:
    db, queries = logged_db
    retention, _ = sweeper(helpdesk, db)
    assert await retention.sweep() == 0  # no chat ever closed: nothing to read but the marker
    old, old_token = await chat_with_messages(helpdesk, LENA, "account_access", "agent-1")
    await close(helpdesk, old["chat_id"], old_token)
    before = await kept(helpdesk.db, old["chat_id"])
    assert all(before.values()), before
    assert await helpdesk.db[APPEAL_PERSONS].find_one({"_id": old["appeal_id"]}) is not None

    helpdesk.clock.advance(timedelta(days=20))
    recent, recent_token = await chat_with_messages(helpdesk, AMARA, "feature_help", "agent-2")
    await close(helpdesk, recent["chat_id"], recent_token)
    still_open, _ = await chat_with_messages(helpdesk, NOOR, "feature_help", "agent-3")
    recent_before = await kept(helpdesk.db, recent["chat_id"])
    open_before = await kept(helpdesk.db, still_open["chat_id"])

    # 30 days after the close: kept (the retention is a minimum).
    helpdesk.clock.advance(timedelta(days=10))
    assert await retention.sweep() == 0
    assert await kept(helpdesk.db, old["chat_id"]) == before

    # From the first midnight past it, the whole chat goes, and only that one.
    helpdesk.clock.advance(timedelta(days=1))
    assert await retention.sweep() == 1
    assert await kept(helpdesk.db, old["chat_id"]) == dict.fromkeys(before, 0)
    assert await helpdesk.db[APPEAL_PERSONS].find_one({"_id": old["appeal_id"]}) is None
    assert await helpdesk.db[CLOSED].count_documents({"chats": old["chat_id"]}) == 0
    assert await kept(helpdesk.db, recent["chat_id"]) == recent_before
    assert await kept(helpdesk.db, still_open["chat_id"]) == open_before
    readable = await helpdesk.agent("GET", still_open["chat_id"], "updates",
        params={"agent_id": "agent-3", "wait_s": 0},
    )  # fmt: skip
    assert "help, says noor_vr" in [m["text"] for m in readable.json()["messages"]]
    gone = await helpdesk.agent(
        "GET", old["chat_id"], "updates", params={"agent_id": "agent-1", "wait_s": 0}
    )
    assert gone.status_code == 404
    # Nothing more is due until the recent chat's day is: a sweep is one read by _id.
    sent = len(logged(queries))
    assert await retention.sweep() == 0
    idle = [(q["collection"], q["command"], q["selects"]) for q in logged(queries)[sent:]]
    assert idle == [(CLOSED, "find", "_id")]
    helpdesk.clock.advance(timedelta(days=20))
    assert await retention.sweep() == 1
    assert await kept(helpdesk.db, recent["chat_id"]) == dict.fromkeys(recent_before, 0)
    assert await kept(helpdesk.db, still_open["chat_id"]) == open_before
    # Every bucket swept is gone; the marker is all that is left of them.
    assert [d["_id"] for d in await helpdesk.db[CLOSED].find({}).to_list(None)] == [SWEPT_THROUGH]
    # Every command of the sweeps named its documents by _id.
    assert scans(queries) == []


async def test_a_sweep_that_failed_half_way_is_finished_by_the_next(
    helpdesk: LiveHelp, monkeypatch: pytest.MonkeyPatch
) -> None:
    retention, repository = sweeper(helpdesk)
    chats = []
    for account, topic, agent_id in (
        (LENA, "account_access", "agent-1"),
        (AMARA, "feature_help", "agent-2"),
    ):
        chat, token = await chat_with_messages(helpdesk, account, topic, agent_id)
        await close(helpdesk, chat["chat_id"], token)
        chats.append(chat)
    marker = await helpdesk.db[CLOSED].find_one({"_id": SWEPT_THROUGH})
    assert marker is not None

    async def store_gone(chat_ids: list[str]) -> None:
        raise RuntimeError("the store went away")

    helpdesk.clock.advance(timedelta(days=RETENTION_DAYS + 1))
    monkeypatch.setattr(repository, "drop_chat_documents", store_gone)
    with pytest.raises(RuntimeError):
        await retention.sweep()
    # Half done: the transcripts are gone, the chat documents, their bucket and the marker not.
    for chat in chats:
        left = await kept(helpdesk.db, chat["chat_id"])
        assert (left[CHATS], left[MESSAGES], left[CLIENT_IDS], left[CLAIMS]) == (1, 0, 0, 0)
    assert await helpdesk.db[CLOSED].count_documents({}) == 2
    assert await helpdesk.db[CLOSED].find_one({"_id": SWEPT_THROUGH}) == marker

    monkeypatch.undo()
    assert await retention.sweep() == 2
    for chat in chats:
        assert not any((await kept(helpdesk.db, chat["chat_id"])).values())
    assert await helpdesk.db[APPEAL_PERSONS].count_documents({}) == 0
    assert [d["_id"] for d in await helpdesk.db[CLOSED].find({}).to_list(None)] == [SWEPT_THROUGH]
    swept = await helpdesk.db[CLOSED].find_one({"_id": SWEPT_THROUGH})
    assert swept is not None and swept["day"] > marker["day"]
    assert await retention.sweep() == 0
