"""Intake's REST API in-process against the real broker and store: errors and auth."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals_devstack import devkeys
from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import Limit, RateLimiter
from services.intake import api, eligibility, repository
from services.intake.service import AppealIntake, IntakePolicy
from tests.support.bodies import valid_body

pytestmark = pytest.mark.integration


def policy_for_tests(**limits: Limit) -> IntakePolicy:
    return IntakePolicy(
        rules=eligibility.load_rules(),
        limiter=RateLimiter(limits or {"appellant": Limit(100, 0)}),
        pseudonym_key=b"test-pseudonym-key",
    )


@pytest.fixture
def key_file(tmp_path: Path) -> tuple[Path, TokenVerifier]:
    private, jwks = devkeys.ensure(tmp_path)
    return private, devkeys.dev_verifier(jwks)


@pytest.fixture
async def client(
    db: store.Database, producer: EventProducer, key_file: tuple[Path, TokenVerifier]
) -> AsyncIterator[httpx.AsyncClient]:
    await store.ensure_indexes(db, repository.INDEXES)
    intake = AppealIntake(repository.IntakeRepository(db), producer, policy_for_tests())
    app = api.create_app(intake, key_file[1], {})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://intake"
    ) as c:
        yield c


def headers(
    key_file: tuple[Path, TokenVerifier],
    *,
    role: str = "surface",
    platforms: list[str] | None = None,
    key: str | None = "auto",
) -> dict[str, str]:
    token = devkeys.mint_token(
        key_file[0], role=role, subject="instagram-web", platforms=platforms or ["instagram"]
    )
    result = {"Authorization": f"Bearer {token}"}
    if key is not None:
        result["Idempotency-Key"] = uuid.uuid4().hex if key == "auto" else key
    return result


async def test_an_accepted_appeal_can_be_read_back(
    client: httpx.AsyncClient, key_file: Any
) -> None:
    response = await client.post("/v1/appeals", json=valid_body(), headers=headers(key_file))
    assert response.status_code == 202
    appeal_id = response.json()["appeal_id"]
    view = await client.get(f"/v1/appeals/{appeal_id}", headers=headers(key_file, key=None))
    assert view.status_code == 200
    assert view.json()["status"] == "received"
    assert view.json()["subject"] == {
        "kind": "post",
        "id": "3141592653589793",
        "content_date": "2026-11-19",
    }
    assert view.json()["decision"]["decided_at"] == "2026-11-20T10:00:00Z"


async def test_invalid_fields_get_problem_json_naming_each_field(
    client: httpx.AsyncClient, key_file: Any
) -> None:
    body = valid_body() | {"locale": "German", "country": "germany", "platform": "myspace"}
    response = await client.post("/v1/appeals", json=body, headers=headers(key_file))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    # Every field the schema refuses is named at once (the schema declares what intake checks).
    assert {p["name"] for p in response.json()["invalid_params"]} == {
        "platform", "locale", "country",
    }  # fmt: skip
    body = valid_body() | {"locale": "German", "country": "germany"}
    response = await client.post("/v1/appeals", json=body, headers=headers(key_file))
    assert {p["name"] for p in response.json()["invalid_params"]} == {"locale", "country"}


async def test_a_missing_idempotency_key_is_a_400(client: httpx.AsyncClient, key_file: Any) -> None:
    response = await client.post(
        "/v1/appeals", json=valid_body(), headers=headers(key_file, key=None)
    )
    assert response.status_code == 400
    assert response.json()["invalid_params"][0]["name"] == "Idempotency-Key"


async def test_callers_are_authenticated_before_bodies_are_read(
    client: httpx.AsyncClient, key_file: Any
) -> None:
    anonymous = await client.post("/v1/appeals", json={"nonsense": True})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = await client.post(
        "/v1/appeals",
        json=valid_body(),
        headers={"Authorization": "Bearer e30.e30.", "Idempotency-Key": "k"},
    )
    assert forged.status_code == 401


async def test_agents_and_other_platforms_may_not_submit(
    client: httpx.AsyncClient, key_file: Any
) -> None:
    agent = await client.post(
        "/v1/appeals", json=valid_body(), headers=headers(key_file, role="agent")
    )
    assert agent.status_code == 403
    facebook = await client.post(
        "/v1/appeals", json=valid_body(), headers=headers(key_file, platforms=["facebook"])
    )
    assert facebook.status_code == 403
