"""`appeals demo` with live help (issue 17's acceptance): alongside the appeal stream, a locked-out
person from the DEVELOPMENT-ONLY sample accounts verifies with the code sent to the contact on
file, chats with one of the demo's simulated agents over the desk's chat RPCs, and the appeal the
chat opened is decided from it, notified and audited with the chat's events."""

from __future__ import annotations

import asyncio
import re
import subprocess

import httpx
import pytest

from tests.e2e.conftest import APPEALS, Pipeline, cli_environment
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

# A DEVELOPMENT-ONLY sample account (services/help/dev_accounts.yaml) no other e2e test asks a
# code for: code requests per account are limited. An automated spam ban on WhatsApp: the demo
# rule restores access once the holder proved control of the account.
ACCOUNT = "wa-dev-rafael"
PERSON = "+5511955500002@whatsapp"  # as the demo names the person: how they name the account


def run_demo(pipeline: Pipeline) -> subprocess.CompletedProcess[str]:
    env = {
        **cli_environment(pipeline),
        "APPEALS_HELP_URL": pipeline.url("help"),
        # Where the person's "device" reads the code (notifications' DEV-ONLY records).
        "MONGODB_URL": pipeline.infra.mongodb_url,
        "MONGODB_DATABASE": pipeline.database,
    }
    return subprocess.run(
        [APPEALS, "demo", "--appeals", "3", "--reviewers", "2", "--rate", "8", "--seed", "11",
         "--chats", "1", "--chat-every", "1", "--chat-accounts", ACCOUNT],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip


def found(pattern: str, output: str) -> re.Match[str]:
    match = re.search(pattern, output)
    assert match, (pattern, output)
    return match


async def test_a_locked_out_person_chats_with_a_demo_agent_who_decides_their_appeal(
    pipeline: Pipeline,
) -> None:
    result = await asyncio.to_thread(run_demo, pipeline)
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    person = re.escape(PERSON)
    found(rf"{person}: verified with the code sent to the contact on file", output)
    opened = found(rf"{person}: opened chat (ch_\S+)  account_access \(pt\) for (ap_\w+)", output)
    chat_id, appeal_id = opened.group(1), opened.group(2)
    found(rf"reviewer-\d: accepted chat {chat_id}  whatsapp account_access \(pt\)", output)
    found(rf"reviewer-\d: answered chat {chat_id}", output)
    found(rf"{person}: got an answer in {chat_id}; replied", output)
    found(rf"reviewer-\d: decided {appeal_id}: overturned", output)
    closed = found(rf"(reviewer-\d): closed chat {chat_id}: access_restored", output)
    # The person read the agent's answer and its closing words, written before the close.
    found(rf"{person}: chat {chat_id} ended: access_restored \(2 message\(s\) from "
          rf"{closed.group(1)}\)", output)  # fmt: skip
    # The closing tables: the demo's appeals, all decided, and the chat.
    found(rf"{chat_id}\s+{person}\s+account_access\s+{appeal_id}\s+access_restored", output)
    rows = [line.split() for line in output.splitlines() if line.startswith("ap_")]
    assert len(rows) == 3 and all(row[2] == "decided" for row in rows), output

    ops = {"Authorization": f"Bearer {pipeline.ops_token()}"}
    async with httpx.AsyncClient(timeout=10, headers=ops) as client:

        async def decided() -> dict[str, str] | None:
            view = (await client.get(f"{pipeline.url('intake')}/v1/appeals/{appeal_id}")).json()
            return view if view.get("status") == "decided" else None

        view = await eventually(decided, "the chat's appeal decided at intake", 30)
        assert view["outcome"] == "overturned"

        async def chat_in_trail() -> set[str] | None:
            trail = await client.get(f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail")
            kinds = {entry["type"] for entry in trail.json().get("entries", [])}
            wanted = {"chat_requested", "chat_agent_joined", "chat_first_answer", "chat_closed"}
            return kinds if wanted | {"decided"} <= kinds else None

        await eventually(chat_in_trail, "the chat's events in the appeal's audit trail", 60)

        async def told() -> list[str] | None:
            response = await client.get(
                f"{pipeline.url('notifications')}/v1/appeals/{appeal_id}/notifications"
            )
            kinds = [n["kind"] for n in response.json().get("notifications", [])]
            return kinds if "decided" in kinds else None

        await eventually(told, "the person told of the decision", 60)
