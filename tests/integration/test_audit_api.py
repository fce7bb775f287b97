"""Audit's REST API on the real store: trails with proofs, proof bundles a third party checks,
verification, checkpoints, queries; ops only, and every read logged."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals.v1 import appeal_pb2
from appeals_devstack import devkeys
from appeals_proofs import bundles, merkle, proofs
from appeals_proofs.checkpoints import open_checkpoint
from appeals_proofs.signed_note import Verifier
from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from services.audit import api
from services.audit.config import AuditSettings
from services.audit.log import entries
from services.audit.log.repository import AUDIT_LOG
from tests.support.audit import (
    Audit,
    Case,
    lifecycle,
    new_appeal_id,
    open_audit,
    record,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Tokens:
    ops: str
    surface: str
    agent: str
    ops_without_audit_scope: str


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Tokens, TokenVerifier]:
    key, jwks = devkeys.ensure(tmp_path)
    verifier = TokenVerifier.from_settings(AuditSettings(auth_jwks_file=jwks))
    minted = Tokens(
        ops=devkeys.mint_token(key, role="ops", subject="ops-1"),
        surface=devkeys.mint_token(key, role="surface", subject="s", platforms=["facebook"]),
        agent=devkeys.mint_token(key, role="agent", subject="alice", queues=["*"]),
        ops_without_audit_scope=devkeys.mint_token(
            key, role="ops", subject="ops-2", scopes=["appeals:read"]
        ),
    )
    return minted, verifier


@pytest.fixture
async def audit(db: store.Database, tmp_path: Path) -> Audit:
    return await open_audit(db, tmp_path)


@pytest.fixture
async def client(
    audit: Audit, tokens: tuple[Tokens, TokenVerifier]
) -> AsyncIterator[httpx.AsyncClient]:
    app = api.create_app(audit.service, tokens[1])
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {tokens[0].ops}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://audit", headers=headers
    ) as c:
        yield c


async def access_records(audit: Audit) -> list[dict[str, Any]]:
    found = await audit.db[AUDIT_LOG].find({"type": "access"}).to_list()
    return [json.loads(entries.payload_of(document)) for document in found]


async def test_a_trail_comes_with_inclusion_proofs_against_the_latest_checkpoint(
    client: httpx.AsyncClient, audit: Audit
) -> None:
    appeal_id, other = new_appeal_id(), new_appeal_id()
    mine = lifecycle(appeal_id)
    await record(audit, *mine[:3], *lifecycle(other)[:2])
    await audit.service.integrity.checkpoint()
    await record(audit, *mine[3:])  # newer than the checkpoint: no proof yet

    response = await client.get(f"/v1/appeals/{appeal_id}/trail")

    assert response.status_code == 200, response.text
    body = response.json()
    assert [(e["index"], e["type"]) for e in body["entries"]] == [
        (0, "submitted"),
        (1, "routed"),
        (2, "claimed"),
        (5, "decided"),
        (6, "notified"),
    ]
    assert body["tree_size"] == 5
    verifier = Verifier.from_vkey((await client.get("/v1/audit/key")).json()["verifier_key"])
    signed = open_checkpoint(body["checkpoint"], verifier)
    for entry in body["entries"][:3]:
        path = [bytes.fromhex(h) for h in entry["audit_path"]]
        proofs.verify_inclusion(
            entry["index"], signed.size, bytes.fromhex(entry["leaf_hash"]), path, signed.root
        )
    assert [e["audit_path"] for e in body["entries"][3:]] == [None, None]
    assert body["entries"][0]["producer"] == "intake"
    assert body["entries"][0]["occurred_at"] == entries.rfc3339(
        mine[0].occurred_at.ToDatetime(tzinfo=UTC)
    )


async def test_every_read_is_logged_before_it_is_answered(
    client: httpx.AsyncClient, audit: Audit
) -> None:
    appeal_id = new_appeal_id()
    await record(audit, *lifecycle(appeal_id))

    await client.get(f"/v1/appeals/{appeal_id}/trail")
    await client.get("/v1/audit/verify")
    await client.get("/v1/appeals/nobody/trail")  # a failed read is a read too
    await client.get("/v1/audit/appeals", params={"platform": "instagram"})

    logged = await access_records(audit)
    assert [(r["reader"], r["role"], r["action"], r["target"]) for r in logged] == [
        ("ops-1", "ops", "trail", appeal_id),
        ("ops-1", "ops", "verify", "log"),
        ("ops-1", "ops", "trail", "nobody"),
        ("ops-1", "ops", "query appeals", "appeals"),
    ]
    assert logged[3]["platform"] == "instagram"
    # The access records are entries like any other: in the tree, verified, provable.
    assert (await audit.service.integrity.verify()).entries == 5 + 4


async def test_an_inclusion_bundle_checks_out_with_only_the_verifier_key(
    client: httpx.AsyncClient, audit: Audit, tmp_path: Path
) -> None:
    events = lifecycle(new_appeal_id())
    await record(audit, *events)
    vkey = (await client.get("/v1/audit/key")).json()["verifier_key"]

    # No checkpoint covers it yet: asking for the proof signs one (the logged read included).
    by_event = await client.get(
        "/v1/audit/proofs/inclusion", params={"event_id": events[3].event_id}
    )
    by_index = await client.get("/v1/audit/proofs/inclusion", params={"index": 0})

    assert by_event.status_code == 200, by_event.text
    bundle = by_event.json()
    assert (bundle["kind"], bundle["leaf_index"], bundle["tree_size"]) == ("inclusion", 3, 6)
    assert bundle["entry"]["type"] == "decided"
    assert "decided" in bundles.check(bundle, Verifier.from_vkey(vkey))
    assert by_index.json()["tree_size"] == 6  # the checkpoint just signed covers it

    # The third party's command: the bundle file and the key, nothing else.
    good, forged = tmp_path / "good.json", tmp_path / "forged.json"
    good.write_text(json.dumps(bundle))
    bundle["entry"]["producer"] = "someone-else"
    bundle["leaf_hash"] = merkle.leaf_hash(bundles.canonical(bundle["entry"])).hex()
    forged.write_text(json.dumps(bundle))
    assert check_proof(good, vkey) == (0, "OK")
    assert check_proof(forged, vkey) == (1, "INVALID")


def check_proof(bundle: Path, vkey: str) -> tuple[int, str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "appeals_cli.main",
            "audit",
            "check-proof",
            str(bundle),
            "--key",
            vkey,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout.split(":")[0]


async def test_a_consistency_bundle_shows_the_log_only_grew(
    client: httpx.AsyncClient, audit: Audit
) -> None:
    await record(audit, *lifecycle(new_appeal_id()))
    first = (await client.post("/v1/audit/checkpoints")).json()
    await record(audit, *lifecycle(new_appeal_id()), *lifecycle(new_appeal_id()))
    second = (await client.post("/v1/audit/checkpoints")).json()
    vkey = (await client.get("/v1/audit/key")).json()["verifier_key"]

    response = await client.get(
        "/v1/audit/proofs/consistency",
        params={"first": first["tree_size"], "second": second["tree_size"]},
    )

    assert response.status_code == 200, response.text
    bundle = response.json()
    assert (bundle["first_size"], bundle["second_size"]) == (
        first["tree_size"],
        second["tree_size"],
    )
    bundles.check(bundle, Verifier.from_vkey(vkey))
    missing = await client.get("/v1/audit/proofs/consistency", params={"first": 3})
    assert missing.status_code == 404


async def test_verify_reports_ok_and_entries_and_where_a_tampered_log_breaks(
    client: httpx.AsyncClient, audit: Audit
) -> None:
    await record(audit, *lifecycle(new_appeal_id()))
    await audit.service.integrity.checkpoint()
    await record(audit, *lifecycle(new_appeal_id()))

    intact = await client.get("/v1/audit/verify")
    await audit.db[AUDIT_LOG].update_one({"_id": entries.entry_key(7)}, {"$set": {"producer": "x"}})
    broken = await client.get("/v1/audit/verify")

    assert intact.status_code == 200
    body = intact.json()
    assert (body["ok"], body["entries"], body["checkpoint_size"], body["problem"]) == (
        True,
        11,  # ten events and the read being answered
        5,
        None,
    )
    assert len(body["root_hash"]) == 64
    assert (broken.json()["ok"], broken.json()["first_bad_index"]) == (False, 7)
    assert broken.json()["problem"] == "hash mismatch"
    # Entry 7 is not signed yet, and never will be as it now stands.
    refused = await client.post("/v1/audit/checkpoints")
    assert refused.status_code == 409
    assert "refusing to sign" in refused.json()["detail"]


async def test_ops_query_appeals_by_platform_queue_outcome_and_time_page_by_page(
    client: httpx.AsyncClient, audit: Audit
) -> None:
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    cases = [
        Case(platform=appeal_pb2.PLATFORM_INSTAGRAM, queue="instagram.de"),
        Case(
            platform=appeal_pb2.PLATFORM_INSTAGRAM,
            queue="instagram.de",
            outcome=appeal_pb2.OUTCOME_UPHELD,
        ),
        Case(platform=appeal_pb2.PLATFORM_FACEBOOK, queue="facebook.en"),
        Case(platform=appeal_pb2.PLATFORM_INSTAGRAM, queue="instagram.en"),
        Case(platform=appeal_pb2.PLATFORM_INSTAGRAM, queue="instagram.de"),
    ]
    ids = [new_appeal_id() for _ in cases]
    for n, (appeal_id, case) in enumerate(zip(ids, cases, strict=True)):
        await record(audit, *lifecycle(appeal_id, case, start=t0 + timedelta(days=n)))

    async def query(**params: Any) -> dict[str, Any]:
        response = await client.get("/v1/audit/appeals", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    overturned_de = await query(platform="instagram", queue="instagram.de", outcome="overturned")
    assert [a["appeal_id"] for a in overturned_de["appeals"]] == [ids[0], ids[4]]
    assert overturned_de["appeals"][0]["queues"] == ["instagram.de"]
    in_range = await query(since="2025-03-02T00:00:00Z", until="2025-03-04T00:00:00Z")
    assert [a["appeal_id"] for a in in_range["appeals"]] == [ids[1], ids[2]]

    first_page = await query(platform="instagram", limit=2)
    second_page = await query(platform="instagram", limit=2, cursor=first_page["next_cursor"])
    last_page = await query(platform="instagram", limit=2, cursor=second_page["next_cursor"])
    pages = [first_page, second_page, last_page]
    assert [[a["appeal_id"] for a in page["appeals"]] for page in pages] == [
        [ids[0], ids[1]],
        [ids[3], ids[4]],
        [],
    ]
    assert last_page["next_cursor"] is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/appeals/some-appeal/trail"),
        ("GET", "/v1/audit/verify"),
        ("GET", "/v1/audit/key"),
        ("GET", "/v1/audit/checkpoints/latest"),
        ("POST", "/v1/audit/checkpoints"),
        ("GET", "/v1/audit/proofs/inclusion?index=0"),
        ("GET", "/v1/audit/proofs/consistency?first=1"),
        ("GET", "/v1/audit/appeals"),
        ("GET", "/v1/audit/exports/statements-of-reasons?since=2025-01-01&until=2025-02-01"),
        ("GET", "/v1/audit/reports/complaint-handling?month=2025-01"),
    ],
)
async def test_only_ops_tokens_with_the_audit_scope_get_in(
    client: httpx.AsyncClient, tokens: tuple[Tokens, TokenVerifier], method: str, path: str
) -> None:
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    anonymous = await client.request(method, path, headers={"Authorization": ""})
    forged = await client.request(method, path, headers=bearer(tokens[0].ops[:-4] + "AAAA"))
    surface = await client.request(method, path, headers=bearer(tokens[0].surface))
    agent = await client.request(method, path, headers=bearer(tokens[0].agent))
    unscoped = await client.request(method, path, headers=bearer(tokens[0].ops_without_audit_scope))

    assert (anonymous.status_code, forged.status_code) == (401, 401)
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert (surface.status_code, agent.status_code, unscoped.status_code) == (403, 403, 403)
    for response in (anonymous, forged, surface, agent, unscoped):
        assert response.headers["content-type"] == "application/problem+json"
