"""The ops page in a real browser (headless Chromium) while `appeals demo` runs.

The page is opened once with an ops token in its fragment; the figures must change while the demo
submits and decides appeals, without a reload; a search by appeal id shows the appeal's status,
its trail and a link to its trace. The screenshot is kept in ``.local/test-artifacts/`` for a
person to look at.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from appeals_devstack.jaeger import JaegerQuery
from appeals_devstack.paths import REPO_ROOT
from tests.e2e.conftest import APPEALS, Pipeline, cli_environment
from tests.support.browser import Page, chromium, read_png

pytestmark = pytest.mark.e2e

SCREENSHOT = REPO_ROOT / ".local" / "test-artifacts" / "ops-page.png"
WIDTH, HEIGHT = 1280, 1100
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


def run_demo(pipeline: Pipeline) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [APPEALS, "demo", "--appeals", "6", "--reviewers", "2", "--rate", "4", "--seed", "3"],
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
    page.navigate(f"{pipeline.url('ops')}/ops#token={pipeline.ops_token()}")
    page.wait_for(
        "document.querySelector('#connection').dataset.state === 'live'"
        " && document.querySelectorAll('#targets li.up').length === 4",
        timeout_s=30,
        what="the page to connect and see all four services up",
    )
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
