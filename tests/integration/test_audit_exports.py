"""Transparency exports, the Art. 15 report and reconciliation, derived from a logged fixture set
on the real store (and, for reconciliation, the real broker); and the operator CLI end to end, a
separate process calling the audit service's API on a real HTTP server over that store.

The reconciliation and erasure endpoints' own contract (roles, validation, intake's records) is
in test_audit_operations.py."""

from __future__ import annotations

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
from services.audit.exports.acknowledgements import TopicAcknowledgements
from services.audit.exports.reconciliation import Window
from services.audit.exports.transparency import EEA
from services.audit.log import entries
from services.audit.log.repository import AUDIT_LOG
from tests.support.audit import (
    Audit,
    Case,
    lifecycle,
    new_appeal_id,
    open_audit,
    record,
    serving_audit,
)
from tests.support.http_server import run_command

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


async def test_the_cli_verifies_proves_reports_and_forgets_through_the_api(
    infra: Infrastructure, audit: Audit, fixture_set: dict[str, str], tmp_path: Path
) -> None:
    async with serving_audit(audit, tmp_path / "keys", infra.kafka_bootstrap_servers) as server:
        ops_token = server.token("ops", "ops-cli")

        async def cli(*args: str, token: str = ops_token) -> tuple[int, str, str]:
            return await run_command(
                sys.executable, "-m", "appeals_cli.main", "audit", "--audit-url", server.base,
                "--token", token, *args,
            )  # fmt: skip

        async def check_proof(bundle: Path, vkey: str) -> tuple[int, str]:
            # No --audit-url, no token: the third party's command needs no service.
            code, out, _ = await run_command(
                sys.executable, "-m", "appeals_cli.main", "audit", "check-proof", str(bundle),
                "--key", vkey,
            )  # fmt: skip
            return code, out.split(":")[0]

        code, note, err = await cli("checkpoint")
        assert code == 0, err
        assert note.startswith(f"{audit.settings.origin}\n")
        first_size = int(note.splitlines()[1])
        assert f"tree size {first_size}" in err
        vkey = (await cli("key"))[1].strip()
        assert vkey.startswith(f"{audit.settings.origin}+")

        code, verified, err = await cli("verify")
        assert code == 0, err
        assert json.loads(verified)["ok"] is True

        code, trail, err = await cli("trail", fixture_set["A"])
        assert code == 0, err
        shown = json.loads(trail)
        assert shown["appeal_id"] == fixture_set["A"]
        assert [e["type"] for e in shown["entries"]] == [
            "submitted", "routed", "claimed", "decided", "notified",
        ]  # fmt: skip
        assert all(e["proved"] for e in shown["entries"])
        assert shown["entries"][0]["occurred_at"] == STARTS["A"].isoformat()

        assert (await cli("report", "--month", "2025-03"))[1].splitlines() == MARCH_CSV
        code, as_json, err = await cli("report", "--month", "2025-03", "--format", "json")
        assert code == 0, err
        assert [p["platform"] for p in json.loads(as_json)["platforms"]] == [
            "facebook", "instagram", "whatsapp",
        ]  # fmt: skip

        exported = tmp_path / "statements.json"
        code, _, err = await cli(
            "export", "--since", "2025-03-01", "--until", "2025-04-01", "-o", str(exported)
        )
        assert code == 0, err
        batches = json.loads(exported.read_text())["batches"]
        assert [b["platform"] for b in batches] == ["facebook", "instagram"]

        decided_a = events.derived_event_id(fixture_set["A"], "decided")
        bundle = tmp_path / "proof.json"
        code, _, err = await cli("proof", "--event-id", decided_a, "-o", str(bundle))
        assert code == 0, err
        assert await check_proof(bundle, vkey) == (0, "OK")
        forged = json.loads(bundle.read_text())
        forged["entry"]["producer"] = "someone-else"
        bundle.write_text(json.dumps(forged))
        assert await check_proof(bundle, vkey) == (1, "INVALID")

        assert (await cli("checkpoint"))[0] == 0
        grown = tmp_path / "consistency.json"
        code, _, err = await cli("consistency", str(first_size), "-o", str(grown))
        assert code == 0, err
        assert await check_proof(grown, vkey) == (0, "OK")

        code, forgotten, err = await cli("forget", "--platform", "facebook", "--user-id", "u-b")
        assert code == 0, err
        assert "data key shredded" in forgotten
        pseudonym = forgotten.split(":")[0]
        code, again, err = await cli("forget", "--pseudonym", pseudonym)
        assert (code, again.strip()) == (0, f"{pseudonym}: no data key was left"), err

        window = ("--since", "2025-03-01T00:00:00Z", "--until", "2025-04-01T00:00:00Z")
        code, reconciled, err = await cli("reconcile", *window, "--topics-only")
        # The topics hold no acknowledgements of 2025: every logged appeal is reported.
        assert code == 1, err
        assert set(json.loads(reconciled)["not_acknowledged"]) >= {fixture_set["A"]}
        # The options of the command that read the store itself still parse: the token goes
        # to the service, intake's URL is the service's own (none here) and said to be ignored.
        code, legacy, err = await run_command(
            sys.executable, "-m", "appeals_cli.main", "audit", "--audit-url", server.base,
            "reconcile", *window, "--intake-url", "http://127.0.0.1:1", "--token", ops_token,
        )  # fmt: skip
        assert code == 1 and "--intake-url is ignored" in err
        assert json.loads(legacy)["not_acknowledged"] == json.loads(reconciled)["not_acknowledged"]

        # An auditor's token reads but does not shred: the service's refusal, exit 1.
        auditor = server.token("auditor", "auditor-cli")
        assert (await cli("verify", token=auditor))[0] == 0
        code, _, err = await cli("forget", "--pseudonym", pseudonym, token=auditor)
        assert code == 1 and "answered 403" in err

        await audit.db[AUDIT_LOG].delete_one({"type": "claimed", "appeal_id": fixture_set["C"]})
        code, broken, _ = await cli("verify")
        assert code == 1
        assert json.loads(broken)["problem"] == "missing entry"

        code, _, err = await cli("trail", "ap_nobody")
        assert code == 1 and "answered 404" in err

        unreachable = await run_command(
            sys.executable, "-m", "appeals_cli.main", "audit", "--audit-url",
            "http://127.0.0.1:1", "--token", ops_token, "verify",
        )  # fmt: skip
        assert unreachable[0] == 1 and "cannot reach the audit service" in unreachable[2]
    # Every CLI read above is on the record, under its token's subject, and each erasure too.
    logged = sorted(await audit.db[AUDIT_LOG].find({}).to_list(), key=lambda d: d["index"])
    reads = [(d["producer"], json.loads(entries.payload_of(d))["action"])
             for d in logged if d["type"] == "access"]  # fmt: skip
    assert reads == [
        ("ops-cli", "sign checkpoint"),
        ("ops-cli", "verify"),
        ("ops-cli", "trail"),
        ("ops-cli", "complaint-handling report"),
        ("ops-cli", "complaint-handling report"),
        ("ops-cli", "export statements of reasons"),
        ("ops-cli", "inclusion proof"),
        ("ops-cli", "sign checkpoint"),
        ("ops-cli", "consistency proof"),
        ("ops-cli", "reconcile"),
        ("ops-cli", "reconcile"),
        ("auditor-cli", "verify"),
        ("ops-cli", "verify"),
        ("ops-cli", "trail"),
    ]
    assert [d["producer"] for d in logged if d["type"] == "erasure"] == ["ops-cli", "ops-cli"]
