"""Transparency exports, the Art. 15 report and reconciliation, derived from a logged fixture set
on the real store (and, for reconciliation, the real broker); and the operator CLI end to end."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from appeals import events, topics
from appeals.v1 import appeal_pb2, intake_pb2
from appeals_devstack import devkeys
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.kafka.producer import EventProducer
from services.audit import api
from services.audit.config import AuditSettings
from services.audit.exports import sources
from services.audit.exports.acknowledgements import (
    ReconciliationSources,
    TopicAcknowledgements,
)
from services.audit.exports.reconciliation import Window
from services.audit.exports.transparency import EEA
from services.audit.log.repository import AUDIT_LOG
from tests.support.audit import (
    Audit,
    Case,
    lifecycle,
    new_appeal_id,
    open_audit,
    record,
)
from tests.support.http_server import run_command, serving

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# The fixture set: four appeals, three decided in March 2025.
A = Case(  # Instagram post, submitted 3 March 10:00, overturned 5 h later
    platform=appeal_pb2.PLATFORM_INSTAGRAM, policy="hate_speech", rationale="News quotation.",
    decided_after=timedelta(hours=5),
)  # fmt: skip
B = Case(  # Facebook account, submitted 10 March, upheld 2 days later; logged in the old
    # layout (personal data in the event, sealed by audit), as entries from before intake became
    # its only holder are: exports read both layouts, and `forget` has a key to shred.
    platform=appeal_pb2.PLATFORM_FACEBOOK, kind=appeal_pb2.SUBJECT_KIND_ACCOUNT,
    policy="fake_account", action="disabled", locale="en-US", country="US",
    outcome=appeal_pb2.OUTCOME_UPHELD, rationale="Impersonation.", decided_after=timedelta(days=2),
    user_id="u-b", old_layout=True,
)  # fmt: skip
C = Case(  # Instagram reel, submitted 27 February 12:00, upheld 3 days later (2 March)
    platform=appeal_pb2.PLATFORM_INSTAGRAM, kind=appeal_pb2.SUBJECT_KIND_REEL, policy="spam",
    automated=False, locale="fr-FR", country="FR", outcome=appeal_pb2.OUTCOME_UPHELD,
    rationale="Spam.", decided_after=timedelta(days=3), user_id="u-c",
)  # fmt: skip
D = Case(  # WhatsApp message, submitted 31 March 20:00, decided 1 April
    platform=appeal_pb2.PLATFORM_WHATSAPP, kind=appeal_pb2.SUBJECT_KIND_MESSAGE, policy="spam",
    decided_after=timedelta(hours=5), user_id="u-d",
)  # fmt: skip
STARTS = {
    "A": datetime(2025, 3, 3, 10, tzinfo=UTC),
    "B": datetime(2025, 3, 10, tzinfo=UTC),
    "C": datetime(2025, 2, 27, 12, tzinfo=UTC),
    "D": datetime(2025, 3, 31, 20, tzinfo=UTC),
}


@pytest.fixture
async def audit(db: store.Database, tmp_path: Path) -> Audit:
    return await open_audit(db, tmp_path)


@pytest.fixture
async def fixture_set(audit: Audit) -> dict[str, str]:
    ids = {name: new_appeal_id() for name in STARTS}
    for name, case in (("A", A), ("B", B), ("C", C), ("D", D)):
        await record(audit, *lifecycle(ids[name], case, start=STARTS[name]))
    return ids


@pytest.fixture
async def client(audit: Audit, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    key, jwks = devkeys.ensure(tmp_path)
    app = api.create_app(
        audit.service, TokenVerifier.from_settings(AuditSettings(auth_jwks_file=jwks))
    )
    headers = {"Authorization": f"Bearer {devkeys.mint_token(key, role='ops', subject='dsa')}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://audit", headers=headers
    ) as c:
        yield c


async def test_the_march_export_holds_the_expected_statements_field_by_field(
    client: httpx.AsyncClient, fixture_set: dict[str, str]
) -> None:
    response = await client.get(
        "/v1/audit/exports/statements-of-reasons",
        params={"since": "2025-03-01T00:00:00Z", "until": "2025-04-01T00:00:00Z"},
    )

    assert response.status_code == 200, response.text
    batches = response.json()["batches"]
    assert [(b["platform"], [s["puid"] for s in b["statements"]]) for b in batches] == [
        ("facebook", [fixture_set["B"]]),
        ("instagram", [fixture_set["C"], fixture_set["A"]]),  # in the order they were decided
    ]
    statement_a = batches[1]["statements"][1]
    assert statement_a == {
        "decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
        "decision_monetary": None,
        "decision_provision": None,
        "decision_account": None,
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "incompatible_content_ground": "hate_speech",
        "incompatible_content_explanation": "News quotation.",
        "category": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
        "category_specification": ["KEYWORD_HATE_SPEECH"],
        "content_type": ["CONTENT_TYPE_TEXT"],
        "automated_detection": "Yes",
        "automated_decision": "AUTOMATED_DECISION_PARTIALLY",
        "source_type": "SOURCE_VOLUNTARY",
        "content_date": "2025-03-02",
        "application_date": "2025-03-02",
        "end_date_visibility_restriction": "2025-03-03",
        "puid": fixture_set["A"],
        "territorial_scope": list(EEA),
        "content_language": "DE",
        "decision_facts": (
            "The post was removed under the hate_speech policy, detected by automated means. "
            "On appeal, a person reviewed the decision and reversed it on 2025-03-03."
        ),
    }
    statement_b = batches[0]["statements"][0]
    assert (statement_b["decision_account"], statement_b["content_language"]) == (
        "DECISION_ACCOUNT_SUSPENDED",
        "EN",
    )
    statement_c = batches[1]["statements"][0]
    assert (statement_c["content_type"], statement_c["automated_decision"]) == (
        ["CONTENT_TYPE_VIDEO"],
        "AUTOMATED_DECISION_NOT_AUTOMATED",
    )
    only_facebook = await client.get(
        "/v1/audit/exports/statements-of-reasons",
        params={
            "since": "2025-03-01T00:00:00Z",
            "until": "2025-04-01T00:00:00Z",
            "platform": "facebook",
        },
    )
    assert [b["platform"] for b in only_facebook.json()["batches"]] == ["facebook"]


# By hand, March 2025:
#   instagram: received A (C arrived in February) = 1, basis hate_speech 1;
#              decided A (5 h = 18 000 s, overturned) and C (3 days = 259 200 s, upheld);
#              median (18 000 + 259 200) / 2 = 138 600; p90 = 2nd of 2 = 259 200
#   facebook:  received B, decided B after 2 days = 172 800 s, upheld
#   whatsapp:  received D (31 March), decided in April: no decisions
MARCH_CSV = [
    "platform,month,appeals_received,basis,decisions,decided_by_people,upheld,overturned,"
    "partially_overturned,reversals,median_time_to_decision_s,p90_time_to_decision_s",
    "facebook,2025-03,1,fake_account=1,1,1,1,0,0,0,172800,172800",
    "instagram,2025-03,1,hate_speech=1,2,2,1,1,0,1,138600,259200",
    "whatsapp,2025-03,1,spam=1,0,0,0,0,0,0,,",
]


async def test_the_march_report_matches_the_hand_computation_in_csv_and_json(
    client: httpx.AsyncClient, fixture_set: dict[str, str]
) -> None:
    as_csv = await client.get(
        "/v1/audit/reports/complaint-handling", params={"month": "2025-03", "format": "csv"}
    )
    as_json = await client.get("/v1/audit/reports/complaint-handling", params={"month": "2025-03"})

    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines() == MARCH_CSV
    instagram = as_json.json()["platforms"][1]
    assert instagram == {
        "platform": "instagram",
        "month": "2025-03",
        "appeals_received": 1,
        "basis": {"hate_speech": 1},
        "decisions": 2,
        "decided_by_people": 2,
        "upheld": 1,
        "overturned": 1,
        "partially_overturned": 0,
        "reversals": 1,
        "median_time_to_decision_s": 138600.0,
        "p90_time_to_decision_s": 259200.0,
    }
    bad_month = await client.get(
        "/v1/audit/reports/complaint-handling", params={"month": "2025-13"}
    )
    assert bad_month.status_code == 400


async def test_an_export_refuses_an_entry_that_was_edited(
    client: httpx.AsyncClient, audit: Audit, fixture_set: dict[str, str]
) -> None:
    decided = await audit.db[AUDIT_LOG].find_one({"appeal_id": fixture_set["A"], "type": "decided"})
    assert decided is not None
    await audit.db[AUDIT_LOG].update_one({"_id": decided["_id"]}, {"$set": {"producer": "x"}})

    response = await client.get(
        "/v1/audit/exports/statements-of-reasons",
        params={"since": "2025-03-01T00:00:00Z", "until": "2025-04-01T00:00:00Z"},
    )

    assert response.status_code == 409
    assert "leaf hash" in response.json()["detail"]


async def test_reconciliation_names_every_appeal_on_one_side_only(
    infra: Infrastructure, producer: EventProducer, audit: Audit
) -> None:
    now = datetime.now(UTC)
    kept, lost, via_outcome, invented, orphan = (new_appeal_id() for _ in range(5))
    for appeal_id in (kept, lost):
        await producer.publish(topics.APPEAL_LIFECYCLE, lifecycle(appeal_id, start=now)[0])
    outcome = intake_pb2.AppealRequestOutcome(
        request_id="req-1", accepted=intake_pb2.AppealRequestOutcome.Accepted(appeal_id=via_outcome)
    )
    outcome.decided_at.FromDatetime(now)
    await producer.publish(topics.APPEAL_REQUEST_OUTCOMES, outcome)
    await record(audit, *lifecycle(kept, start=now))
    await record(audit, lifecycle(via_outcome, start=now)[0])
    await record(audit, lifecycle(invented, start=now)[0])  # never acknowledged by intake
    await record(audit, *lifecycle(orphan, start=now)[1:])  # no submitted entry
    window = Window(now - timedelta(minutes=1), now + timedelta(minutes=1))

    async def intake_knows(appeal_id: str) -> bool:
        return False

    result = await sources.reconcile_log(
        audit.service.log, TopicAcknowledgements(infra.kafka_bootstrap_servers), window,
        intake=intake_knows,
    )  # fmt: skip

    assert not result.ok
    # The broker is shared with other tests: other appeals may be missing from this test's log.
    assert lost in result.missing_from_log
    assert {kept, via_outcome}.isdisjoint(result.missing_from_log)
    assert result.not_acknowledged == [invented]
    assert result.without_submitted == [orphan]

    async def intake_knows_invented(appeal_id: str) -> bool:
        return appeal_id == invented

    confirmed = await sources.reconcile_log(
        audit.service.log, TopicAcknowledgements(infra.kafka_bootstrap_servers), window,
        intake=intake_knows_invented,
    )  # fmt: skip
    assert confirmed.not_acknowledged == []


# The operator CLI, a separate process, against the audit service's API on the same store ------


@contextlib.asynccontextmanager
async def audit_http(
    audit: Audit, infra: Infrastructure, tmp_path: Path
) -> AsyncIterator[tuple[str, str]]:
    """The audit service's API over ``audit`` on a real HTTP server: its URL and an ops token."""
    key, jwks = devkeys.ensure(tmp_path / "keys")
    app = api.create_app(
        audit.service,
        TokenVerifier.from_settings(AuditSettings(auth_jwks_file=jwks)),
        reconciliation=ReconciliationSources(infra.kafka_bootstrap_servers, intake_url=None),
    )
    async with serving(app) as base:
        yield base, devkeys.mint_token(key, role="ops", subject="ops-cli")


async def test_the_cli_verifies_proves_reports_and_forgets_through_the_api(
    infra: Infrastructure, audit: Audit, fixture_set: dict[str, str], tmp_path: Path
) -> None:
    async with audit_http(audit, infra, tmp_path) as (base, token):

        async def cli(*args: str) -> tuple[int, str, str]:
            return await run_command(
                sys.executable, "-m", "appeals_cli.main", "audit", "--audit-url", base,
                "--token", token, *args,
            )  # fmt: skip

        code, note, err = await cli("checkpoint")
        assert code == 0, err
        assert note.startswith(f"{audit.settings.origin}\n")

        code, verified, err = await cli("verify")
        assert code == 0, err
        assert json.loads(verified)["ok"] is True

        assert (await cli("report", "--month", "2025-03"))[1].splitlines() == MARCH_CSV

        decided_a = events.derived_event_id(fixture_set["A"], "decided")
        bundle = tmp_path / "proof.json"
        code, _, err = await cli("proof", "--event-id", decided_a, "-o", str(bundle))
        assert code == 0, err
        vkey = (await cli("key"))[1].strip()
        code, checked, _ = await run_command(
            sys.executable, "-m", "appeals_cli.main", "audit", "check-proof", str(bundle),
            "--key", vkey,
        )  # fmt: skip
        assert (code, checked.split(":")[0]) == (0, "OK")

        code, forgotten, err = await cli("forget", "--platform", "facebook", "--user-id", "u-b")
        assert code == 0, err
        assert "data key shredded" in forgotten

        window = ("--since", "2025-03-01T00:00:00Z", "--until", "2025-04-01T00:00:00Z")
        code, reconciled, err = await cli("reconcile", *window, "--topics-only")
        # The topics hold no acknowledgements of 2025: every logged appeal is reported.
        assert code == 1, err
        assert set(json.loads(reconciled)["not_acknowledged"]) >= {fixture_set["A"]}

        await audit.db[AUDIT_LOG].delete_one({"type": "claimed", "appeal_id": fixture_set["C"]})
        code, broken, _ = await cli("verify")
        assert code == 1
        assert json.loads(broken)["problem"] == "missing entry"

        unreachable = await run_command(
            sys.executable, "-m", "appeals_cli.main", "audit", "--audit-url",
            "http://127.0.0.1:1", "--token", token, "verify",
        )  # fmt: skip
        assert unreachable[0] == 1 and "cannot reach the audit service" in unreachable[2]
    # Every CLI read above is on the record, under the token's subject.
    readers = await audit.db[AUDIT_LOG].find({"type": "access"}).to_list()
    assert {r["producer"] for r in readers} == {"ops-cli"}
    # checkpoint, verify, report, proof, reconcile, verify
    assert len(readers) == 6


async def test_only_ops_reconcile_or_shred_and_requests_are_checked(
    infra: Infrastructure, audit: Audit, tmp_path: Path
) -> None:
    key, _ = devkeys.ensure(tmp_path / "keys")
    async with (
        audit_http(audit, infra, tmp_path) as (base, token),
        httpx.AsyncClient(base_url=base, timeout=60) as http,
    ):

        def bearer(role: str) -> dict[str, str]:
            minted = devkeys.mint_token(key, role=role, subject=role)
            return {"Authorization": f"Bearer {minted}"}

        ops = {"Authorization": f"Bearer {token}"}
        window = {"since": "2025-03-01T00:00:00Z", "until": "2025-03-02T00:00:00Z"}
        erasure = {"pseudonym": "ps_" + "0" * 32}
        auditor = bearer("auditor")
        refused = [
            await http.get("/v1/audit/reconciliation", params=window),
            await http.get("/v1/audit/reconciliation", params=window, headers=auditor),
            await http.post("/v1/audit/erasures", json=erasure),
            await http.post("/v1/audit/erasures", json=erasure, headers=auditor),
        ]
        backwards = await http.get(
            "/v1/audit/reconciliation",
            params={"since": window["until"], "until": window["since"]},
            headers=ops,
        )
        both = await http.post(
            "/v1/audit/erasures", json={**erasure, "platform": "facebook", "user_id": "u"},
            headers=ops,
        )  # fmt: skip
        first = await http.post("/v1/audit/erasures", json=erasure, headers=ops)
        again = await http.post("/v1/audit/erasures", json=erasure, headers=ops)
    assert [response.status_code for response in refused] == [401, 403, 401, 403]
    assert backwards.status_code == 400
    assert both.status_code == 400
    assert first.status_code == again.status_code == 200
    assert first.json()["pseudonym"] == erasure["pseudonym"]
