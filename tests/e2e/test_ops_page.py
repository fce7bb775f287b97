"""The ops page in a real browser (headless Chromium) while `appeals demo` runs.

The page is opened once with an ops token in its fragment; the figures must change while the demo
submits and decides appeals, without a reload; a search by appeal id shows the appeal's status,
its trail and a link to its trace. The screenshot is kept in ``.local/test-artifacts/`` for a
person to look at.

Live help (issue 17): while a person's chat waits, the API and the page show it waiting (routing's
count); once an agent answers and the person closes it, its first answer and its time to resolve
are counted and timed.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc
from appeals_devstack.jaeger import JaegerQuery
from appeals_devstack.paths import REPO_ROOT
from appeals_devstack.stack import LIVE_HELP, PIPELINE
from tests.e2e.conftest import APPEALS, Pipeline, cli_environment
from tests.support import live_chat
from tests.support.browser import Page, chromium, read_png
from tests.support.live_chat import frames, offered
from tests.support.pipeline import register_senior_for_everything
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

SCREENSHOT = REPO_ROOT / ".local" / "test-artifacts" / "ops-page.png"
WIDTH, HEIGHT = 1280, 1100
# What the page scrapes: the four services and live help.
TARGETS = sorted(spec.name for spec in (*PIPELINE, LIVE_HELP))
# A DEVELOPMENT-ONLY sample account (services/help/dev_accounts.yaml) no other e2e test asks a
# code for (code requests per account are limited), named by its phone number.
CHAT_ACCOUNT = {"platform": "facebook", "account": "sofia.ruiz"}
TOPIC = "feature_help"
# Flow figures the demo moves: each must go up on the page while it stays open.
FLOW = ("received", "routed", "decided", "notified")
FIGURES = """Object.fromEntries([...document.querySelectorAll('.figure')].map(
    card => [card.dataset.figure, card.querySelector('output').textContent]))"""


def figures(page: Page) -> dict[str, str]:
    found: dict[str, str] = page.evaluate(FIGURES)
    return found


def count(text: str) -> int | None:
    """A figure as a number; None for "no data"."""
    return int(text.replace(",", "")) if re.fullmatch(r"[\d,]+", text) else None


def grown(before: dict[str, str], now: dict[str, str]) -> list[str]:
    return [name for name in FLOW if (count(now[name]) or 0) > (count(before[name]) or 0)]


# No chats: the sample accounts' code limits belong to the live-help tests.
DEMO = ["demo", "--appeals", "6", "--reviewers", "2", "--rate", "4", "--seed", "3", "--chats", "0"]


def run_demo(pipeline: Pipeline) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [APPEALS, *DEMO],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_environment(pipeline),
    )


def test_the_ops_page_follows_the_demo_live_and_finds_an_appeal(
    pipeline: Pipeline, jaeger: JaegerQuery, tmp_path: Path
) -> None:
    with chromium(tmp_path / "chromium", width=WIDTH, height=HEIGHT) as page:
        try:
            appeal_id, before, after = watch_the_demo(page, pipeline)
            status, trail, link = search(page, appeal_id)
            span_services = show_spans(page)
        except BaseException:
            page.screenshot(SCREENSHOT.with_name("ops-page-failed.png"))
            raise
        page.evaluate("window.scrollTo(0, 0)")
        png = page.screenshot(SCREENSHOT)

    assert grown(before, after) == list(FLOW), (before, after)
    assert status == "decided"
    assert trail[0] == "submitted"
    assert {"routed", "claimed", "decided"} <= set(trail)
    # The link opens the appeal's trace in the stack's Jaeger, which holds it.
    trace_ui, _, trace_id = link.rpartition("/trace/")
    assert trace_ui == jaeger.base_url and re.fullmatch("[0-9a-f]{32}", trace_id), link
    assert {"intake", "routing"} <= jaeger.wait_for_trace(trace_id).services()
    # The page also draws the trace itself, read by the ops service from Jaeger's query API.
    assert {"intake", "routing", "notifications", "audit"} <= span_services
    picture = read_png(png)
    assert (picture.width, picture.height) == (WIDTH, HEIGHT)
    colours = picture.colours()
    assert len(colours) > 50, "a rendered page has text, charts and colours"
    assert colours.most_common(1)[0][1] < 0.9 * WIDTH * HEIGHT, "not a blank page"


def watch_the_demo(page: Page, pipeline: Pipeline) -> tuple[str, dict[str, str], dict[str, str]]:
    """Open the page, run the demo, see the figures move without a reload."""
    # Once only (open_page navigates): a second navigation to the same address changes only its
    # fragment, so the page does not load again and the token it put back stays in the bar.
    open_page(page, pipeline)
    assert page.evaluate("location.hash") == "", "the token must leave the address bar"
    before = figures(page)
    page.evaluate("window.sameDocument = true")
    changed = f"""(() => {{
        const before = {json.dumps(before)}, now = {FIGURES};
        return {json.dumps(FLOW)}.some(name => now[name] !== before[name]);
    }})()"""
    demo = run_demo(pipeline)
    try:
        page.wait_for(changed, timeout_s=60, what="a figure to change while the demo runs")
        output, _ = demo.communicate(timeout=180)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, output
    # The demo ends once its appeals are decided; the page catches up within a scrape or two.
    caught_up = f"""(() => {{
        const before = {json.dumps(before)}, now = {FIGURES};
        const number = text => /^[0-9,]+$/.test(text) ? Number(text.replace(/,/g, "")) : null;
        return {json.dumps(FLOW)}.every(name => number(now[name]) !== null
            && number(now[name]) >= (number(before[name]) || 0) + 6);
    }})()"""
    page.wait_for(caught_up, timeout_s=30, what="the demo's six appeals to show in each figure")
    assert page.evaluate("window.sameDocument") is True, "the page must update without a reload"
    assert page.evaluate("document.querySelector('#chart-flow polyline') !== null")
    return re.findall(r"submitted (ap_\w+)", output)[0], before, figures(page)


def open_page(page: Page, pipeline: Pipeline) -> None:
    """The page, signed in by the token in its fragment, live and seeing every target up."""
    page.navigate(f"{pipeline.url('ops')}/ops#token={pipeline.ops_token()}")
    up = "[...document.querySelectorAll('#targets li.up')].map(li => li.dataset.target).sort()"
    page.wait_for(
        "document.querySelector('#connection').dataset.state === 'live'"
        f" && JSON.stringify({up}) === {json.dumps(json.dumps(TARGETS, separators=(',', ':')))}",
        timeout_s=30,
        what=f"the page to connect and see {', '.join(TARGETS)} up",
    )


def show_spans(page: Page) -> set[str]:
    """Open the appeal's spans on the page (again, while the exporters are still delivering the
    last ones); the services its waterfall shows."""
    services: set[str] = set()
    for _ in range(10):
        page.evaluate(
            "document.querySelector('#waterfall')?.remove();"
            "document.querySelector('#show-spans').click()"
        )
        rows = page.wait_for(
            "document.querySelector('#waterfall') &&"
            " [...document.querySelectorAll('#waterfall tbody tr')].map(r => r.dataset.service)",
            timeout_s=15,
            what="the trace's waterfall",
        )
        services = set(rows)
        if len(services) >= 4:
            break
        time.sleep(1)
    return services


def search(page: Page, appeal_id: str) -> tuple[str, list[str], str]:
    """Search the appeal on the page: its status, the events of its trail, its trace link."""
    page.evaluate(
        f"document.querySelector('#search-input').value = {json.dumps(appeal_id)};"
        "document.querySelector('#search-form').requestSubmit()"
    )
    page.wait_for(
        f"document.querySelector('#search-result').dataset.appeal === {json.dumps(appeal_id)}",
        timeout_s=15,
        what="the search result",
    )
    status = page.evaluate("document.querySelector('#search-result .status').textContent")
    trail = page.evaluate(
        "[...document.querySelectorAll('#trail tbody tr')].map(row => row.dataset.event)"
    )
    link = page.evaluate("document.querySelector('#search-result [data-trace-link]').href")
    return status, trail, link


# --- live help ---------------------------------------------------------------------------------


async def help_session(client: httpx.AsyncClient, pipeline: Pipeline) -> dict[str, str]:
    """A live-help session for the chat account."""
    return await live_chat.help_session(
        client, pipeline.url("help"), pipeline.infra.mongodb_url, pipeline.database, CHAT_ACCOUNT
    )


def opened(shown: dict[str, Any], topic: str) -> float:
    """Chats of ``topic`` opened, as the ops API shows them."""
    rows = shown["live_help"]["opened"]
    return sum(float(row["value"]) for row in rows if row["topic"] == topic)


def resolved(shown: dict[str, Any], topic: str) -> float:
    """Chats of ``topic`` closed (and timed), as the ops API shows them."""
    rows = shown["live_help"]["resolution_by_topic"]
    return sum(float(row["count"]) for row in rows if row["topic"] == topic)


async def accept_and_answer(
    desk: agent_desk_pb2_grpc.AgentDeskStub, agent: Any, chat_id: str
) -> asyncio.Queue[agent_desk_pb2.ChatClientFrame | None]:
    """An agent registers, is offered the chat, accepts it; the frames of its chat session (to
    join it and answer), ready for ``ChatSession`` (None ends them)."""
    await register_senior_for_everything(desk, agent)
    await offered(desk, agent, chat_id)
    await desk.AcceptChat(agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=agent)
    outgoing: asyncio.Queue[agent_desk_pb2.ChatClientFrame | None] = asyncio.Queue()
    await outgoing.put(
        agent_desk_pb2.ChatClientFrame(join=agent_desk_pb2.ChatJoin(chat_id=chat_id))
    )
    answer = agent_desk_pb2.ChatSend(client_id="a-1", text="Open the story and pick who sees it.")
    await outgoing.put(agent_desk_pb2.ChatClientFrame(send=answer))
    return outgoing


async def test_the_ops_page_shows_live_help_chats_waiting_answered_and_resolved(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    help_url = pipeline.url("help")
    agent = (("authorization", f"Bearer {pipeline.agent_token('ops-page-chat-agent')}"),)
    async with (
        httpx.AsyncClient(timeout=30) as client,
        grpc.aio.insecure_channel(pipeline.desk_grpc) as channel,
    ):

        async def overview() -> dict[str, Any]:
            response = await client.get(
                f"{pipeline.url('ops')}/v1/ops/overview",
                headers={"Authorization": f"Bearer {pipeline.ops_token()}"},
            )
            assert response.status_code == 200, response.text
            snapshot: dict[str, Any] = response.json()["snapshot"]
            return snapshot

        async def shown_when(check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
            async def probe() -> dict[str, Any] | None:
                shown = await overview()
                return shown if check(shown) else None

            return await eventually(probe, what, 45)

        before = await overview()
        person = await help_session(client, pipeline)
        response = await client.post(
            f"{help_url}/v1/help/chats",
            json={"topic": TOPIC, "language": "en", "feature": "Stories",
                  "message": "How do I hide my story from one person?"},
            headers=person,
        )  # fmt: skip
        assert response.status_code in (200, 201), response.text
        chat_id = response.json()["chat_id"]

        waiting = await shown_when(
            lambda s: (
                s["totals"]["chats_waiting"] >= 1 and opened(s, TOPIC) > opened(before, TOPIC)
            ),
            "the ops API to show the chat waiting and opened",
        )
        assert "chats_waiting" not in waiting["no_data"]
        assert {target["name"] for target in waiting["targets"] if target["up"]} == set(TARGETS)

        with chromium(tmp_path / "chromium", width=WIDTH, height=HEIGHT) as page:
            try:
                await asyncio.to_thread(open_page, page, pipeline)
                await asyncio.to_thread(
                    page.wait_for,
                    "Number(document.querySelector('[data-figure=chats_waiting]')"
                    ".dataset.value || 0) >= 1",
                    timeout_s=30,
                    what="the page to show the chat waiting",
                )

                desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
                outgoing = await accept_and_answer(desk, agent, chat_id)
                session = desk.ChatSession(frames(outgoing), metadata=agent)
                try:
                    answered = await shown_when(
                        lambda s: s["totals"]["first_answers"] > before["totals"]["first_answers"],
                        "the ops API to count the agent's first answer",
                    )
                finally:
                    await outgoing.put(None)
                    session.cancel()
                first_answer = answered["live_help"]["first_answer"]
                assert first_answer["count"] >= 1 and first_answer["p50_s"] is not None
                assert 0 <= first_answer["p50_s"] <= first_answer["p90_s"]
                assert "first_answer_p50_s" not in answered["no_data"]
                count = int(answered["totals"]["first_answers"])
                await asyncio.to_thread(
                    page.wait_for,
                    "(document.querySelector('[data-figure=first_answer_p50_s]').dataset.value"
                    " || '') !== '' && Number(document.querySelector("
                    "'[data-figure-note=first_answers]').textContent.replace(/[^0-9]/g, ''))"
                    f" >= {count}",
                    timeout_s=30,
                    what="the page to show the first answer's time and count",
                )

                closed = await client.post(
                    f"{help_url}/v1/help/chats/{chat_id}/close", headers=person
                )
                assert closed.status_code == 200, closed.text
                shown = await shown_when(
                    lambda s: resolved(s, TOPIC) > resolved(before, TOPIC),
                    "the ops API to time the chat's resolution",
                )
                row = next(
                    r for r in shown["live_help"]["resolution_by_topic"] if r["topic"] == TOPIC
                )
                assert row["p50_s"] is not None and row["p50_s"] <= row["p90_s"]
                assert any(
                    r["resolution"] == "closed_by_person" for r in shown["live_help"]["closed"]
                )
                topics = await asyncio.to_thread(
                    page.wait_for,
                    "(() => { const topics = [...document.querySelectorAll("
                    "'#table-chats-resolution tbody tr td:first-child')].map(td => td.textContent);"
                    f" return topics.includes({json.dumps(TOPIC)}) && topics; }})()",
                    timeout_s=30,
                    what="the page to show the time to resolve per topic",
                )
            except BaseException:
                page.screenshot(SCREENSHOT.with_name("ops-page-live-help-failed.png"))
                raise
            await asyncio.to_thread(page.screenshot, SCREENSHOT.with_name("ops-page-live-help.png"))
    assert TOPIC in topics
