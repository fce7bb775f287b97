"""What only ops do through audit's API, on a real HTTP server over the real store and broker:
reconciliation (``GET /v1/audit/reconciliation``) against the topics and intake's own records,
read from intake's real app with the caller's own token, and crypto-shredding
(``POST /v1/audit/erasures``). Who may call them, and what they refuse."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals import topics
from appeals.events import new_event
from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.audit.log import entries
from services.audit.log.repository import AUDIT_LOG
from services.audit.privacy import sealing
from services.intake import api as intake_api
from services.intake import identity
from services.intake.consumer import StatusProjection
from tests.support.audit import (
    Audit,
    Case,
    lifecycle,
    new_appeal_id,
    open_audit,
    record,
    serving_audit,
)
from tests.support.http_server import serving
from tests.support.intake_app import IntakeUnderTest, start_intake

pytestmark = pytest.mark.integration

# A window of this module's own, far from any other test's appeals (and from the topics' records,
# which carry today's times).
T0 = datetime(2024, 7, 8, 9, 0, tzinfo=UTC)
WINDOW = {"since": "2024-07-08T08:59:00Z", "until": "2024-07-08T09:01:00Z"}


@pytest.fixture
async def audit(db: store.Database, tmp_path: Path) -> Audit:
    return await open_audit(db, tmp_path / "audit")


@contextlib.asynccontextmanager
async def intake_over_http(under_test: IntakeUnderTest) -> AsyncIterator[str]:
    """Intake's real app (the one ``start_intake`` built the client for) on a real port."""
    app = intake_api.create_app(under_test.intake, under_test.verifier, {})
    async with serving(app) as base:
        yield base


async def acknowledge(intake: IntakeUnderTest, appeal_id: str, at: datetime) -> None:
    """What intake's status projection does when the appeal's submitted event comes by: the
    appeal enters intake's listing by reception time (the topics are not written)."""
    event = new_event(
        event_id=identity.submitted_event_id(appeal_id),
        appeal_id=appeal_id,
        producer="intake",
        occurred_at=at,
        submitted=events_pb2.AppealSubmitted(channel="rest"),
    )
    message = InboundMessage(topics.APPEAL_LIFECYCLE.name, 0, 0, None, event, {}, 0)
    await StatusProjection(intake.repository, intake.intake.erasures).handle(message)


async def access_records(audit: Audit) -> list[dict[str, Any]]:
    found = await audit.db[AUDIT_LOG].find({"type": "access"}).to_list()
    return [json.loads(entries.payload_of(d)) for d in sorted(found, key=lambda d: int(d["index"]))]


# Reconciliation -------------------------------------------------------------------------------


async def test_reconciliation_names_both_sides_from_intakes_records_read_with_the_callers_token(
    infra: Infrastructure,
    db: store.Database,
    producer: EventProducer,
    audit: Audit,
    tmp_path: Path,
) -> None:
    # Intake and audit trust the same dev key: the ops token audit is called with is one intake
    # accepts too, and audit has none of its own.
    keys = tmp_path / "keys"
    intake = await start_intake(db, producer, keys)
    kept, lost, invented = (new_appeal_id() for _ in range(3))
    for appeal_id in (kept, lost):
        await acknowledge(intake, appeal_id, T0)
    await record(audit, *lifecycle(kept, start=T0))
    await record(audit, lifecycle(invented, start=T0)[0])  # intake never acknowledged it
    async with (
        intake_over_http(intake) as intake_url,
        serving_audit(audit, keys, infra.kafka_bootstrap_servers, intake_url=intake_url) as server,
        httpx.AsyncClient(base_url=server.base, timeout=120) as http,
    ):
        ops = server.headers("ops", "ops-reconciler")
        both = await http.get("/v1/audit/reconciliation", params=WINDOW, headers=ops)
        topics_only = await http.get(
            "/v1/audit/reconciliation", params={**WINDOW, "intake": "false"}, headers=ops
        )
    await intake.client.aclose()

    assert both.status_code == 200, both.text
    assert both.json() == {
        "ok": False,
        "since": "2024-07-08T08:59:00Z",
        "until": "2024-07-08T09:01:00Z",
        "acknowledged": 2,
        "logged": 2,
        "missing_from_log": [lost],  # intake acknowledged it; the log has nothing of it
        "not_acknowledged": [invented],  # the log has it; intake does not know it
        "without_submitted": [],
    }
    # The topics alone hold nothing of July 2024: intake's side is intake's records.
    assert topics_only.status_code == 200, topics_only.text
    alone = topics_only.json()
    assert (alone["acknowledged"], alone["missing_from_log"]) == (0, [])
    assert alone["not_acknowledged"] == sorted([kept, invented])
    # Both reads are on the record, under the caller, before they were answered.
    logged = await access_records(audit)
    assert [(r["reader"], r["role"], r["action"], r["intake"]) for r in logged] == [
        ("ops-reconciler", "ops", "reconcile", True),
        ("ops-reconciler", "ops", "reconcile", False),
    ]


async def test_reconciliation_says_when_intake_refuses_or_cannot_be_reached(
    infra: Infrastructure,
    db: store.Database,
    producer: EventProducer,
    audit: Audit,
    tmp_path: Path,
) -> None:
    # An intake that trusts another key refuses the caller's token: a bad gateway, not a retry.
    stranger = await start_intake(db, producer, tmp_path / "other-keys")
    async with (
        intake_over_http(stranger) as intake_url,
        serving_audit(
            audit, tmp_path / "keys", infra.kafka_bootstrap_servers, intake_url=intake_url
        ) as server,
        httpx.AsyncClient(base_url=server.base, timeout=120) as http,
    ):
        refused = await http.get(
            "/v1/audit/reconciliation", params=WINDOW, headers=server.headers()
        )
    await stranger.client.aclose()
    async with (
        serving_audit(
            audit, tmp_path / "keys", infra.kafka_bootstrap_servers,
            intake_url="http://127.0.0.1:1",
        ) as server,
        httpx.AsyncClient(base_url=server.base, timeout=120) as http,
    ):  # fmt: skip
        unreachable = await http.get(
            "/v1/audit/reconciliation", params=WINDOW, headers=server.headers()
        )
        without_intake = await http.get(
            "/v1/audit/reconciliation", params={**WINDOW, "intake": "false"},
            headers=server.headers(),
        )  # fmt: skip

    assert refused.status_code == 502, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "intake answered 401" in refused.json()["detail"]
    assert unreachable.status_code == 503, unreachable.text
    assert unreachable.headers["content-type"].startswith("application/problem+json")
    assert without_intake.status_code == 200, without_intake.text
    assert without_intake.json()["ok"] is True  # an empty log, and nothing acknowledged in 2024


async def test_reconciliation_checks_its_window(
    infra: Infrastructure, audit: Audit, tmp_path: Path
) -> None:
    async with (
        serving_audit(audit, tmp_path / "keys", infra.kafka_bootstrap_servers) as server,
        httpx.AsyncClient(base_url=server.base, timeout=60) as http,
    ):
        answers = {
            name: await http.get(
                "/v1/audit/reconciliation", params=params, headers=server.headers()
            )
            for name, params in {
                "backwards": {"since": WINDOW["until"], "until": WINDOW["since"]},
                "empty": {"since": WINDOW["since"], "until": WINDOW["since"]},
                "no offset": {"since": "2024-07-08T08:59:00", "until": WINDOW["until"]},
                "not a time": {"since": "yesterday", "until": WINDOW["until"]},
                "no until": {"since": WINDOW["since"]},
                "bad intake flag": {**WINDOW, "intake": "perhaps"},
            }.items()
        }
    for name, response in answers.items():
        assert response.status_code == 400, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), name
        assert response.json()["invalid_params"], name
    assert [p["name"] for p in answers["backwards"].json()["invalid_params"]] == ["until"]
    assert [p["name"] for p in answers["no offset"].json()["invalid_params"]] == ["since"]
    # Refused requests read nothing, so nothing was logged.
    assert await access_records(audit) == []


# Erasure --------------------------------------------------------------------------------------


async def test_forgetting_shreds_a_persons_key_once_and_the_log_still_verifies(
    infra: Infrastructure, audit: Audit, tmp_path: Path
) -> None:
    # Logged in the old layout: audit sealed the person's data under its own pseudonym of them.
    case = Case(platform=appeal_pb2.PLATFORM_FACEBOOK, user_id="u-forget", old_layout=True)
    appeal_id = new_appeal_id()
    await record(audit, *lifecycle(appeal_id, case))
    submitted = await audit.db[AUDIT_LOG].find_one({"appeal_id": appeal_id, "type": "submitted"})
    assert submitted is not None and submitted.get("sealed")
    assert await audit.service.personal_data(submitted)  # readable until forgotten
    expected = sealing.pseudonym(
        audit.secrets, platform=appeal_pb2.PLATFORM_FACEBOOK, user_id="u-forget"
    )
    async with (
        serving_audit(audit, tmp_path / "keys", infra.kafka_bootstrap_servers) as server,
        httpx.AsyncClient(base_url=server.base, timeout=60) as http,
    ):
        ops = server.headers("ops", "ops-dpo")
        by_user = {"platform": "facebook", "user_id": "u-forget"}
        first = await http.post("/v1/audit/erasures", json=by_user, headers=ops)
        again = await http.post("/v1/audit/erasures", json=by_user, headers=ops)
        by_pseudonym = await http.post(
            "/v1/audit/erasures", json={"pseudonym": expected}, headers=ops
        )
        # Intake's pseudonym of today's appellants: nothing sealed under it, a tombstone all the
        # same (a not-yet-upgraded producer's events of that person are logged without data).
        intakes = await http.post(
            "/v1/audit/erasures", json={"pseudonym": "psn_" + "ab" * 16}, headers=ops
        )
        verified = await http.get("/v1/audit/verify", headers=ops)

    assert first.status_code == 200, first.text
    assert first.json() == {"pseudonym": expected, "shredded": True}
    assert again.json() == {"pseudonym": expected, "shredded": False}  # idempotent
    assert by_pseudonym.json() == {"pseudonym": expected, "shredded": False}
    assert intakes.json() == {"pseudonym": "psn_" + "ab" * 16, "shredded": False}
    with pytest.raises(sealing.Erased):
        await audit.service.personal_data(submitted)
    assert verified.json()["ok"] is True
    erasures = await audit.db[AUDIT_LOG].find({"type": "erasure"}).to_list()
    logged = [json.loads(entries.payload_of(d)) for d in erasures]
    assert sorted(e["subject"] for e in logged) == sorted(
        [expected, expected, expected, "psn_" + "ab" * 16]
    )
    assert {e["requested_by"] for e in logged} == {"ops-dpo"}
    # The erasure entries name the pseudonym only, never the user id.
    assert all("u-forget" not in json.dumps(e) for e in logged)


async def test_an_erasure_names_exactly_one_person_in_one_form(
    infra: Infrastructure, audit: Audit, tmp_path: Path
) -> None:
    pseudonym = "ps_" + "0" * 32
    bodies: dict[str, Any] = {
        "nothing": {},
        "both forms": {"pseudonym": pseudonym, "platform": "facebook", "user_id": "u"},
        "platform alone": {"platform": "facebook"},
        "user alone": {"user_id": "u"},
        "unknown platform": {"platform": "myspace", "user_id": "u"},
        "empty user id": {"platform": "facebook", "user_id": ""},
        "not a pseudonym": {"pseudonym": "bob"},
        "an unknown field": {"pseudonym": pseudonym, "reason": "asked nicely"},
        "not an object": ["ps_" + "0" * 32],
    }
    async with (
        serving_audit(audit, tmp_path / "keys", infra.kafka_bootstrap_servers) as server,
        httpx.AsyncClient(base_url=server.base, timeout=60) as http,
    ):
        answers = {
            name: await http.post("/v1/audit/erasures", json=body, headers=server.headers())
            for name, body in bodies.items()
        }
        not_json = await http.post(
            "/v1/audit/erasures",
            content=b"ps_0",
            headers={**server.headers(), "Content-Type": "application/json"},
        )
    for name, response in {**answers, "not JSON": not_json}.items():
        assert response.status_code == 400, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), name
    # Nothing was shredded or logged.
    assert await audit.db[AUDIT_LOG].count_documents({"type": "erasure"}) == 0


# Who may call them ----------------------------------------------------------------------------


async def test_only_ops_reconcile_or_shred(
    infra: Infrastructure, audit: Audit, tmp_path: Path
) -> None:
    erasure = {"pseudonym": "ps_" + "0" * 32}
    async with (
        serving_audit(audit, tmp_path / "keys", infra.kafka_bootstrap_servers) as server,
        httpx.AsyncClient(base_url=server.base, timeout=120) as http,
    ):

        async def both(headers: dict[str, str]) -> tuple[int, int]:
            reconciled = await http.get(
                "/v1/audit/reconciliation", params={**WINDOW, "intake": "false"}, headers=headers
            )
            erased = await http.post("/v1/audit/erasures", json=erasure, headers=headers)
            return reconciled.status_code, erased.status_code

        callers = {
            "no token": {},
            "not a token": {"Authorization": "Bearer nonsense"},
            "auditor": server.headers("auditor"),
            "agent": server.headers("agent", queues=["*"]),
            "surface": server.headers("surface", platforms=["facebook"]),
            "service": server.headers("service", "routing"),
            "ops without audit:read": server.headers("ops", scopes=["appeals:read"]),
            "ops": server.headers("ops"),
        }
        answers = {name: await both(headers) for name, headers in callers.items()}

    assert answers == {
        "no token": (401, 401),
        "not a token": (401, 401),
        "auditor": (403, 403),
        "agent": (403, 403),
        "surface": (403, 403),
        "service": (403, 403),
        "ops without audit:read": (403, 403),
        "ops": (200, 200),
    }
    # Only ops' reconciliation was read (and logged); only ops' erasure was logged.
    assert [(r["reader"], r["action"]) for r in await access_records(audit)] == [
        ("ops", "reconcile")
    ]
    assert await audit.db[AUDIT_LOG].count_documents({"type": "erasure"}) == 1
