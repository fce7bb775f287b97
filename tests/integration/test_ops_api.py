"""The ops page's endpoints, its search reading a real audit log on the real store: the page
itself is open, its figures need an ops token, its search reads the log through audit's API with
the searcher's token (ops or auditor + audit:read, logged by audit) and links each event's trace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals import topics
from appeals_devstack import devkeys
from appeals_runtime import store, tracing
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.kafka.consumer import InboundMessage
from services.audit import api as audit_api
from services.audit.config import AuditSettings
from services.audit.consumer import AuditHandler
from services.audit.log import entries
from services.audit.log.repository import AUDIT_LOG
from services.ops import api, figures
from services.ops.audit_log import AuditTrails
from services.ops.scraper import OpsBoard
from tests.support import declared_metrics as metrics
from tests.support.audit import Audit, lifecycle, new_appeal_id, open_audit

pytestmark = pytest.mark.integration

TRACE_UI = "http://jaeger.test:16686"


def traceparent(trace_id: str) -> bytes:
    return f"00-{trace_id}-00f067aa0ba902b7-01".encode()


@pytest.fixture
def minted(tmp_path: Path) -> dict[str, Any]:
    key, jwks = devkeys.ensure(tmp_path)
    return {
        "verifier": TokenVerifier.from_settings(AuditSettings(auth_jwks_file=jwks)),
        "ops": devkeys.mint_token(key, role="ops", subject="ops-1"),
        "ops_without_audit_scope": devkeys.mint_token(
            key, role="ops", subject="ops-2", scopes=["appeals:read"]
        ),
        "surface": devkeys.mint_token(key, role="surface", subject="s", platforms=["facebook"]),
        "agent": devkeys.mint_token(key, role="agent", subject="alice", queues=["*"]),
    }


@pytest.fixture
async def audit(db: store.Database, tmp_path: Path) -> Audit:
    return await open_audit(db, tmp_path)


@pytest.fixture
def board() -> OpsBoard:
    return OpsBoard(
        {"intake": "http://intake.test/metrics"},
        interval_s=1,
        window_s=60,
        trace_ui_url=TRACE_UI + "/",
    )


@pytest.fixture
async def client(
    audit: Audit, minted: dict[str, Any], board: OpsBoard
) -> AsyncIterator[httpx.AsyncClient]:
    """The ops page's app, reading the trail from audit's app on the real store."""
    audit_app = audit_api.create_app(audit.service, minted["verifier"])
    trails = AuditTrails("http://audit", transport=httpx.ASGITransport(app=audit_app))
    app = api.create_app(board, trails, minted["verifier"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ops"
    ) as c:
        yield c
    await trails.close()


@pytest.fixture
async def audit_client(audit: Audit, minted: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    app = audit_api.create_app(audit.service, minted["verifier"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://audit"
    ) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def deliver(audit: Audit, event: Any, trace_id: str | None) -> None:
    """One lifecycle record as the audit consumer receives it from Kafka."""
    headers = {tracing.TRACEPARENT: traceparent(trace_id)} if trace_id else {}
    message = InboundMessage(topics.APPEAL_LIFECYCLE.name, 0, 0, None, event, headers, 0)
    await AuditHandler(audit.service, audit.secrets)(message)


async def test_the_page_is_served_to_anyone_and_carries_no_data(client: httpx.AsyncClient) -> None:
    page = await client.get("/ops")
    script = await client.get("/ops/ops.js")
    missing = await client.get("/ops/secrets.txt")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert 'src="/ops/ops.js"' in page.text
    assert "ap_" not in page.text.replace("ap_…", "")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in script.text
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/v1/ops/overview",
        "/v1/ops/stream",
        "/v1/ops/appeals/ap_1",
        "/v1/ops/traces/4bf92f3577b34da6a3ce929d0e0e4736",
    ],
)
async def test_the_data_needs_an_ops_token(
    client: httpx.AsyncClient, minted: dict[str, Any], path: str
) -> None:
    anonymous = await client.get(path)
    forged = await client.get(path, headers=bearer(minted["ops"][:-4] + "AAAA"))
    surface = await client.get(path, headers=bearer(minted["surface"]))
    agent = await client.get(path, headers=bearer(minted["agent"]))

    assert (anonymous.status_code, forged.status_code) == (401, 401)
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert (surface.status_code, agent.status_code) == (403, 403)
    for response in (anonymous, forged, surface, agent):
        assert response.headers["content-type"] == "application/problem+json"
    assert "ops" in surface.json()["detail"]
    assert surface.json()["detail"].endswith("not a surface token")


async def test_the_overview_has_the_latest_figures_their_history_and_the_settings(
    client: httpx.AsyncClient, minted: dict[str, Any], board: OpsBoard
) -> None:
    received = metrics.APPEALS_RECEIVED.prometheus_name
    for count in (3, 8):
        text = f'{received}{{platform="horizon",channel="rest"}} {count}\n'
        await board.publish(
            [figures.TargetScrape("intake", "http://intake.test/metrics", figures.parse(text))]
        )

    # Figures are aggregate metrics, not the log: an ops token without audit:read sees them.
    response = await client.get(
        "/v1/ops/overview", headers=bearer(minted["ops_without_audit_scope"])
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["snapshot"]["totals"]["received"] == 8
    assert body["snapshot"]["targets"] == [
        {"name": "intake", "url": "http://intake.test/metrics", "up": True, "error": None}
    ]
    assert "received" not in body["snapshot"]["no_data"]
    assert [point["totals"]["received"] for point in body["history"]] == [3, 8]
    assert body["settings"]["trace_ui_url"] == TRACE_UI
    assert body["settings"]["interval_s"] == 1


async def test_the_stream_starts_with_the_overview(
    client: httpx.AsyncClient, minted: dict[str, Any], board: OpsBoard
) -> None:
    await board.close()  # the stream ends after its first event, as when the service stops

    response = await client.get("/v1/ops/stream", headers=bearer(minted["ops"]))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    first, *_ = response.text.split("\n\n")
    name, data = first.split("\n")
    assert name == "event: overview"
    assert set(json.loads(data.removeprefix("data: "))) == {"settings", "snapshot", "history"}


async def test_a_search_shows_status_trail_and_trace_links_and_is_logged(
    client: httpx.AsyncClient, minted: dict[str, Any], audit: Audit
) -> None:
    appeal_id = new_appeal_id()
    submitted, routed, claimed, decided, notified = lifecycle(appeal_id)
    entered, review = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
    for event, trace in (
        (submitted, entered), (routed, entered), (claimed, review), (decided, review),
        (notified, None),
    ):  # fmt: skip
        await deliver(audit, event, trace)

    response = await client.get(f"/v1/ops/appeals/{appeal_id}", headers=bearer(minted["ops"]))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["last_event"]) == ("decided", "notified")
    assert (body["platform"], body["queues"], body["outcome"]) == (
        "instagram", ["instagram.de"], "overturned"
    )  # fmt: skip
    assert body["trace_id"] == entered
    assert body["trace_url"] == f"{TRACE_UI}/trace/{entered}"
    assert [(e["type"], e["trace_id"]) for e in body["entries"]] == [
        ("submitted", entered),
        ("routed", entered),
        ("claimed", review),
        ("decided", review),
        ("notified", None),
    ]
    assert body["entries"][2]["trace_url"] == f"{TRACE_UI}/trace/{review}"
    reads = [
        json.loads(entries.payload_of(document))
        for document in await audit.db[AUDIT_LOG].find({"type": "access"}).to_list()
    ]
    # Audit recorded the read under the searcher's own name: the page holds no credentials.
    assert reads == [{"reader": "ops-1", "role": "ops", "action": "trail", "target": appeal_id}]


async def test_the_trace_id_is_kept_out_of_the_hashed_entry(
    audit_client: httpx.AsyncClient, minted: dict[str, Any], audit: Audit
) -> None:
    appeal_id = new_appeal_id()
    submitted = lifecycle(appeal_id)[0]
    await deliver(audit, submitted, "4bf92f3577b34da6a3ce929d0e0e4736")

    entry = await audit.db[AUDIT_LOG].find_one({"appeal_id": appeal_id})
    trail = await audit_client.get(f"/v1/appeals/{appeal_id}/trail", headers=bearer(minted["ops"]))

    assert entry is not None and "trace_id" not in entry
    assert entries.entry_leaf_hash(entry).hex() == entry["leaf_hash"]
    assert trail.json()["entries"][0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_searching_needs_the_audit_scope_and_a_known_appeal(
    client: httpx.AsyncClient, minted: dict[str, Any]
) -> None:
    unscoped = await client.get(
        "/v1/ops/appeals/ap_1", headers=bearer(minted["ops_without_audit_scope"])
    )
    unknown = await client.get("/v1/ops/appeals/ap_unknown", headers=bearer(minted["ops"]))
    malformed = await client.get("/v1/ops/appeals/ap%20x%3Cb%3E", headers=bearer(minted["ops"]))

    assert unscoped.status_code == 403
    assert unknown.status_code == 404
    assert malformed.status_code == 400


async def test_a_trace_backend_that_does_not_answer_is_a_503_and_ids_are_checked(
    client: httpx.AsyncClient, minted: dict[str, Any]
) -> None:
    # jaeger.test does not resolve: the backend is unreachable (the e2e tests read a real one).
    away = await client.get(
        "/v1/ops/traces/4bf92f3577b34da6a3ce929d0e0e4736", headers=bearer(minted["ops"])
    )
    malformed = await client.get("/v1/ops/traces/not-a-trace-id", headers=bearer(minted["ops"]))

    assert away.status_code == 503
    assert away.headers["content-type"] == "application/problem+json"
    assert "Retry-After" in away.headers
    assert malformed.status_code == 400
