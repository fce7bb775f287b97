"""Routing's explanations API (POST /v1/routing/explanations) on a real HTTP server, and the
`appeals route --explain` command that asks it: the CLI talks to routing over its public API and
never imports it; a policy under edit is checked by routing before it is tried."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from appeals_devstack import devkeys
from appeals_runtime.http import health_router, install_problem_handlers
from services.routing.explain_api import explain_router
from services.routing.policy_file import DEFAULT_POLICY_FILE, PolicySource
from tests.support.http_server import run_command, serving

pytestmark = pytest.mark.integration

BODY: dict[str, Any] = {
    "platform": "instagram",
    "appellant": {"user_id": "17841400000000001"},
    "subject": {"kind": "account", "id": "3141592653589793"},
    "decision": {
        "id": "dec-1", "policy": "fake_account", "action": "disabled", "automated": True,
        "decided_at": "2026-11-20T10:00:00Z", "decided_by": "classifier:fake-account-v2",
    },
    "statement": "This is my real account.",
    "locale": "de-DE",
    "country": "DE",
    "signals": {"account_reach": 2500000},
}  # fmt: skip


@contextlib.asynccontextmanager
async def routing_http(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """Routing's explanations API served on a free port; its base URL and the dev signing key."""
    private_key, jwks = devkeys.ensure(tmp_path)
    app = FastAPI()
    app.state.verifier = devkeys.dev_verifier(jwks)
    install_problem_handlers(app)
    app.include_router(health_router({}))
    app.include_router(explain_router(PolicySource.load(DEFAULT_POLICY_FILE)))
    async with serving(app) as base:
        yield base, private_key


async def appeals_cli(*args: str) -> tuple[int, str, str]:
    return await run_command(sys.executable, "-m", "appeals_cli.main", *args)


async def test_the_cli_explains_through_routing_with_its_policy_or_one_under_edit(
    tmp_path: Path,
) -> None:
    appeal = tmp_path / "appeal.json"
    appeal.write_text(json.dumps(BODY))
    edited = tmp_path / "policy.yaml"
    edited.write_text(
        DEFAULT_POLICY_FILE.read_text().replace("high_reach_account", "big_accounts_first")
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\n")
    async with routing_http(tmp_path) as (base, key):
        token = devkeys.mint_token(key, role="ops", subject="ops-1")
        common = ["route", "--explain", str(appeal), "--routing-url", base, "--token", token,
                  "--received-at", "2026-11-25T09:00:00Z"]  # fmt: skip
        code, text, _ = await appeals_cli(*common)
        tried_code, tried, _ = await appeals_cli(*common, "--json", "--policy", str(edited))
        bad_code, _, bad = await appeals_cli(*common, "--policy", str(broken))
        away_code, _, away = await appeals_cli(
            "route",
            "--explain",
            str(appeal),
            "--routing-url",
            "http://127.0.0.1:1",
            "--token",
            token,
        )
    assert code == 0
    assert "rule           high_reach_account (rule 5 of 5 matched first)" in text
    assert "due            2026-11-25T21:00:00+00:00 (12h for priority >= 60 in DE)" in text
    assert tried_code == 0 and json.loads(tried)["rule"] == "big_accounts_first"
    assert bad_code == 2 and "queues: Field required" in bad
    assert away_code == 2 and "cannot reach routing" in away


async def test_only_ops_may_ask_and_bad_facts_are_named(tmp_path: Path) -> None:
    from appeals_cli.route import submission_facts

    request = {"submission": submission_facts(BODY)}
    async with routing_http(tmp_path) as (base, key), httpx.AsyncClient(base_url=base) as http:

        def bearer(role: str) -> dict[str, str]:
            token = devkeys.mint_token(key, role=role, subject=role, queues=["*"])
            return {"Authorization": f"Bearer {token}"}

        url = "/v1/routing/explanations"
        nobody = await http.post(url, json=request)
        agent = await http.post(url, json=request, headers=bearer("agent"))
        ops = await http.post(url, json=request, headers=bearer("ops"))
        wrong = await http.post(
            url, json={"submission": {"platform": "PLATFORM_NOPE"}}, headers=bearer("ops")
        )
        unknown_key = await http.post(url, json={**request, "x": 1}, headers=bearer("ops"))
    assert (nobody.status_code, agent.status_code, ops.status_code) == (401, 403, 200)
    assert ops.json()["queue"] == "instagram.high_reach.de"
    assert wrong.status_code == 400
    assert wrong.json()["invalid_params"][0]["name"] == "submission"
    assert unknown_key.status_code == 400


async def test_a_bad_policy_is_a_422_naming_its_keys_and_the_endpoint_is_documented(
    tmp_path: Path,
) -> None:
    from appeals_cli.route import submission_facts

    request = {"submission": submission_facts(BODY), "received_at": "2026-11-25T09:00:00Z"}
    async with routing_http(tmp_path) as (base, key), httpx.AsyncClient(base_url=base) as http:
        ops = {"Authorization": f"Bearer {devkeys.mint_token(key, role='ops', subject='ops-1')}"}
        url = "/v1/routing/explanations"
        running = await http.post(url, json=request, headers=ops)
        broken = await http.post(url, json={**request, "policy": "version: 1\n"}, headers=ops)
        not_yaml = await http.post(url, json={**request, "policy": "queues: [\n"}, headers=ops)
        naive = await http.post(
            url, json={**request, "received_at": "2026-11-25T09:00:00"}, headers=ops
        )
        documented = (await http.get("/openapi.json")).json()["paths"]
    assert running.status_code == 200 and running.json()["received_at"].startswith("2026-11-25")
    assert broken.status_code == 422
    assert broken.headers["content-type"].startswith("application/problem+json")
    assert broken.json()["code"] == "invalid_policy"
    assert "queues: Field required" in broken.json()["detail"]
    assert not_yaml.status_code == 422 and "not valid YAML" in not_yaml.json()["detail"]
    assert naive.status_code == 400
    assert [p["name"] for p in naive.json()["invalid_params"]] == ["received_at"]
    assert "post" in documented[url]
