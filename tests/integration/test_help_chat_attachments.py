"""Attachments on live-help chat messages by the same rules as appeals (issue 17 item 5), on the
real store and broker: a person's message carries references (media type, https URL, size) that
``appeals.attachments`` allows, the agent sees them on the internal API, they are encrypted with
the person's key (and erased with it); anything else is refused, over REST and the WebSocket
alike, with a problem naming each invalid field, and nothing is stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from appeals_runtime.http import PROBLEM_JSON
from services.help.chat_repository import CHATS, MESSAGES
from tests.support.live_help import LiveHelp, bearer, served

pytestmark = pytest.mark.integration

AMARA = ("facebook", "amara.okafor")  # DEVELOPMENT-ONLY sample account
SCREENSHOT = {
    "media_type": "image/png",
    "uri": "https://cdn.example.org/help/screenshot-of-the-lock.png",
    "size_bytes": 48213,
}
LETTER = {
    "media_type": "application/pdf",
    "uri": "https://files.example.org/id-letter.pdf",
    "size_bytes": 5 * 1024 * 1024,
}
TYPES = (
    "must be one of application/pdf, image/gif, image/jpeg, image/png, image/webp, text/plain, "
    "video/mp4"
)


async def assigned_chat(helpdesk: LiveHelp, agent_id: str) -> tuple[str, str]:
    """A feature-help chat of Amara's that ``agent_id`` took: (chat id, session token)."""
    session = await helpdesk.session_token(*AMARA)
    opened = await helpdesk.client.post(
        "/v1/help/chats",
        json={"topic": "feature_help", "language": "en", "feature": "login"},
        headers=bearer(session),
    )
    assert opened.status_code == 201, opened.text
    chat_id = str(opened.json()["chat_id"])
    taken = await helpdesk.agent("POST", chat_id, "assignment", json={"agent_id": agent_id})
    assert taken.status_code == 200, taken.text
    return chat_id, session


async def send(
    helpdesk: LiveHelp, chat_id: str, session: str, body: dict[str, Any]
) -> httpx.Response:
    return await helpdesk.client.post(
        f"/v1/help/chats/{chat_id}/messages", json=body, headers=bearer(session)
    )


async def test_a_message_carries_attachments_to_the_agent_encrypted(helpdesk: LiveHelp) -> None:
    chat_id, session = await assigned_chat(helpdesk, "agent-4")
    body = {"client_id": "p-1", "text": "Here is what I see", "attachments": [SCREENSHOT, LETTER]}
    sent = await send(helpdesk, chat_id, session, body)
    assert sent.status_code == 201, sent.text
    assert sent.json()["attachments"] == [SCREENSHOT, LETTER]
    # Resent under the same client id: the stored message, attachments and all.
    again = await send(helpdesk, chat_id, session, body | {"attachments": []})
    assert (again.status_code, again.json()["seq"]) == (200, sent.json()["seq"])
    assert again.json()["attachments"] == [SCREENSHOT, LETTER]

    # The agent reads them on the internal API (what routing relays); other messages have none.
    seen = await helpdesk.agent(
        "GET", chat_id, "updates", params={"agent_id": "agent-4", "wait_s": 0}
    )
    by_seq = {m["seq"]: m for m in seen.json()["messages"]}
    assert by_seq[sent.json()["seq"]]["attachments"] == [SCREENSHOT, LETTER]
    assert all(m["attachments"] == [] for s, m in by_seq.items() if s != sent.json()["seq"])

    # The links are the person's data: not in the store in the clear.
    stored = await helpdesk.db[MESSAGES].find_one({"_id": f"{chat_id}:{sent.json()['seq']:010d}"})
    assert stored is not None
    assert "cdn.example.org" not in repr(stored) and "id-letter" not in repr(stored)

    # Forgetting the person erases them with the text.
    assert helpdesk.chats is not None
    assert await helpdesk.chats.forget_person("facebook", "fb-dev-amara")
    erased = await helpdesk.client.get(
        f"/v1/help/chats/{chat_id}/updates", params={"wait_s": 0}, headers=bearer(session)
    )
    (message,) = [m for m in erased.json()["messages"] if m["seq"] == sent.json()["seq"]]
    assert (message["text"], message["attachments"]) == ("[erased]", [])


REFUSED: list[tuple[str, Any, list[dict[str, str]]]] = [
    (
        "six of them",
        [SCREENSHOT] * 6,
        [{"name": "attachments", "reason": "at most 5 attachments"}],
    ),
    (
        "a type appeals do not take, and plain http",
        [LETTER, SCREENSHOT | {"media_type": "text/html", "uri": "http://x.example/a"}],
        [
            {"name": "attachments[1].media_type", "reason": TYPES},
            {
                "name": "attachments[1].uri",
                "reason": "must be an https:// URL of at most 2048 characters",
            },
        ],
    ),
    (
        "a URL too long, an empty file and one too large",
        [
            SCREENSHOT | {"uri": "https://x.example/" + "a" * 2040},
            SCREENSHOT | {"size_bytes": 0},
            LETTER | {"size_bytes": 50 * 1024 * 1024 + 1},
        ],
        [
            {
                "name": "attachments[0].uri",
                "reason": "must be an https:// URL of at most 2048 characters",
            },
            {"name": "attachments[1].size_bytes", "reason": "must be between 1 and 52428800 bytes"},
            {"name": "attachments[2].size_bytes", "reason": "must be between 1 and 52428800 bytes"},
        ],
    ),
]


@pytest.mark.parametrize(("_case", "attachments", "problems"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_attachments_appeals_would_refuse_are_refused_naming_each_field(
    helpdesk: LiveHelp, _case: str, attachments: Any, problems: list[dict[str, str]]
) -> None:
    chat_id, session = await assigned_chat(helpdesk, "agent-5")
    before = await helpdesk.db[CHATS].find_one({"_id": chat_id})
    assert before is not None
    refused = await send(
        helpdesk, chat_id, session, {"client_id": "p-1", "text": "see", "attachments": attachments}
    )
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.json()["invalid_params"] == problems
    # Nothing was stored, and the client id is free for the corrected message.
    after = await helpdesk.db[CHATS].find_one({"_id": chat_id})
    assert after is not None and after["last_seq"] == before["last_seq"]
    fixed = await send(helpdesk, chat_id, session, {"client_id": "p-1", "text": "see"})
    assert fixed.status_code == 201, fixed.text


async def test_malformed_attachments_are_refused_over_rest_and_the_socket(
    helpdesk: LiveHelp,
) -> None:
    chat_id, session = await assigned_chat(helpdesk, "agent-6")
    # Not objects of the three fields: the schema's answer, per field.
    wrong = await send(
        helpdesk, chat_id, session,
        {"client_id": "p-1", "text": "see", "attachments": [{"uri": 5, "size_bytes": "big"}]},
    )  # fmt: skip
    assert wrong.status_code == 400
    assert {p["name"] for p in wrong.json()["invalid_params"]} == {
        "attachments[0].media_type",
        "attachments[0].uri",
        "attachments[0].size_bytes",
    }
    # A lone surrogate, which JSON can spell but no store can keep: refused, not a 500.
    raw = json.dumps(
        {"client_id": "p-1", "text": "see", "attachments": [SCREENSHOT | {"uri": "https://\ud800"}]}
    )
    surrogate = await helpdesk.client.post(
        f"/v1/help/chats/{chat_id}/messages",
        content=raw.encode(),
        headers=bearer(session) | {"content-type": "application/json"},
    )
    assert surrogate.status_code == 400, surrogate.text
    assert [p["name"] for p in surrogate.json()["invalid_params"]] == ["attachments[0].uri"]

    async with (
        served(helpdesk.app) as base,
        connect(f"{base}/v1/help/chats/{chat_id}/socket") as socket,
    ):
        await socket.send(json.dumps({"type": "hello", "token": session}))

        async def frame() -> dict[str, Any]:
            return dict(json.loads(await asyncio.wait_for(socket.recv(), 10)))

        assert (await frame())["type"] == "updates"
        await socket.send(
            json.dumps(
                {"type": "send", "client_id": "w-1", "text": "see",
                 "attachments": [SCREENSHOT | {"media_type": "application/zip"}, "b.png"]}
            )
        )  # fmt: skip
        error = await frame()
        while error["type"] != "error":
            error = await frame()
        assert error["invalid_params"] == [
            {"name": "attachments[1]", "reason": "an object {media_type, uri, size_bytes}"}
        ]
        await socket.send(
            json.dumps(
                {"type": "send", "client_id": "w-2", "text": "see",
                 "attachments": [SCREENSHOT | {"media_type": "application/zip"}]}
            )
        )  # fmt: skip
        error = await frame()
        while error["type"] != "error":
            error = await frame()
        assert error["invalid_params"] == [{"name": "attachments[0].media_type", "reason": TYPES}]
        # The socket's frames are parsed without a schema: the surrogate is caught all the same.
        await socket.send(
            json.dumps(
                {"type": "send", "client_id": "w-2", "text": "see",
                 "attachments": [SCREENSHOT | {"uri": "https://\ud800"}]}
            )
        )  # fmt: skip
        error = await frame()
        while error["type"] != "error":
            error = await frame()
        assert error["invalid_params"] == [
            {"name": "attachments[0].uri", "reason": "must be UTF-8 text"}
        ]
        # A right one over the socket is stored with its attachment.
        await socket.send(
            json.dumps(
                {"type": "send", "client_id": "w-3", "text": "see", "attachments": [SCREENSHOT]}
            )
        )
        pushed = await frame()
        while not pushed.get("messages"):
            pushed = await frame()
        assert [(m["client_id"], m["attachments"]) for m in pushed["messages"]] == [
            ("w-3", [SCREENSHOT])
        ]
