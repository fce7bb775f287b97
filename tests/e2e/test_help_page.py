"""Live help's page in a real browser (headless Chromium), against the stack's own processes: a
person locked out of their account names it, gets a code on the contact the platform has on
file (read here from what the local channel received: notifications' record of the send), types
it and is verified (issue 17, item 1). Chat comes next."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import Pipeline
from tests.support.browser import chromium
from tests.support.live_chat import code_received, fill

pytestmark = pytest.mark.e2e


def test_a_locked_out_person_verifies_their_account_on_the_page(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    with chromium(tmp_path / "chromium", width=900, height=800) as page:
        page.navigate(f"{pipeline.url('help')}/help")
        page.wait_for(
            "document.querySelectorAll('#platform option').length >= 4",
            timeout_s=20,
            what="the platforms to load",
        )
        fill(page, "platform", "instagram")
        fill(page, "account", "@lena.k")
        page.evaluate("document.getElementById('ask').requestSubmit()")
        page.wait_for(
            "!document.getElementById('check').hidden", timeout_s=20, what="the code form"
        )
        # The page never shows where the code went: that would tell whether the account exists.
        assert "If this account exists" in page.evaluate(
            "document.getElementById('sent').textContent"
        )

        # The verification the page started is the newest; its code is what the channel got.
        verification_id = page.evaluate("window.helpState ? window.helpState.verification : ''")
        assert verification_id, "the page keeps the verification it started"
        code = asyncio.run(
            code_received(pipeline.infra.mongodb_url, pipeline.database, verification_id)
        )

        fill(page, "code", "000000" if code != "000000" else "111111")
        page.evaluate("document.getElementById('check').requestSubmit()")
        page.wait_for(
            "document.getElementById('problem').textContent.includes('tries left')",
            timeout_s=20,
            what="a wrong code to be refused with the tries left",
        )
        fill(page, "code", code)
        page.evaluate("document.getElementById('check').requestSubmit()")
        page.wait_for("!document.getElementById('verified').hidden", timeout_s=20, what="verified")
        shown = page.evaluate("document.getElementById('session').textContent")
        stored = page.evaluate("sessionStorage.getItem('help-session') !== null")
    assert "instagram account is verified" in shown
    assert stored
