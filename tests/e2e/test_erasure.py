"""Black-box: a person who appealed twice asks to be forgotten (GDPR Art. 17, issue 13 item 5).

Both appeals go through the running pipeline: reviewed, decided, the person told, audited. Then the
surface relays the person's erasure request to intake. Afterwards the person's user id, contact
details, statement and attachment links are found nowhere: not on any topic the pipeline writes
(DLQs included), not in any document of any database in the store, not in any service's log; the
pseudonym their events carry can no longer be linked to them (intake forgot whose it was); each
erasure is in the audit log, which still verifies; and asking again is answered with 0.
"""

from __future__ import annotations

import uuid
from typing import Any

import bson
import httpx
import pytest

from appeals import topics, vocabulary
from appeals.v1 import appeal_pb2
from appeals_runtime import store
from services.intake import identity
from tests.e2e.conftest import Pipeline
from tests.support.personal_data import (
    every_record_but_the_surfaces_own,
    personal_body,
    raw,
    secrets_of,
    told_and_logged,
)
from tests.support.pipeline import review, submit_rest
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

PLATFORM = "facebook"


async def everything_stored(pipeline: Pipeline) -> bytes:
    """Every document of every collection of every database in the store, as BSON."""
    client = store.create_client(pipeline.infra.mongodb_url, app_name="e2e-erasure")
    found: list[bytes] = []
    try:
        for database in await client.list_database_names():
            for name in await client[database].list_collection_names():
                documents = await client[database][name].find({}).to_list()
                found += [bson.encode(document) for document in documents]
    finally:
        await client.close()
    return b"\x00".join(found)


async def test_a_forgotten_appellant_is_found_nowhere_and_the_audit_log_still_verifies(
    pipeline: Pipeline,
) -> None:
    run = uuid.uuid4().hex[:8]
    first = personal_body(PLATFORM, run, 1)
    second = personal_body(PLATFORM, run, 2)
    second["appellant"] = first["appellant"]  # the same person, another item
    surface = {"Authorization": f"Bearer {pipeline.surface_token(PLATFORM)}"}
    ops = {"Authorization": f"Bearer {pipeline.ops_token()}"}
    async with httpx.AsyncClient(timeout=20) as client:
        ids = []
        for body in (first, second):
            answer = await submit_rest(client, pipeline, body, uuid.uuid4().hex)
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["appeal_id"])
        statements = {ids[0]: first["statement"], ids[1]: second["statement"]}
        await review(
            pipeline,
            {ids[0]: appeal_pb2.OUTCOME_OVERTURNED, ids[1]: appeal_pb2.OUTCOME_UPHELD},
            agent="erasure-reviewer",
            statements=statements,
        )
        await told_and_logged(pipeline, ids)
        secrets = sorted(set(secrets_of(first) + secrets_of(second)))
        key = (pipeline.signing_key.parent / "pseudonym-key.hex").read_bytes().strip()
        person = identity.appellant_key(
            key, vocabulary.PLATFORMS[PLATFORM], first["appellant"]["user_id"]
        ).encode()
        stored = await everything_stored(pipeline)
        # The search sees them while they are kept.
        assert all(secret in stored for secret in secrets) and person in stored

        erased = await client.post(
            f"{pipeline.url('intake')}/v1/erasures",
            json={"platform": PLATFORM, "user_id": first["appellant"]["user_id"]},
            headers=surface,
        )
        assert erased.status_code == 200, erased.text
        assert erased.json()["appeals_erased"] == 2
        erasure_id = erased.json()["erasure_id"]

        async def audited(appeal_id: str) -> list[dict[str, Any]] | None:
            response = await client.get(
                f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail", headers=ops
            )
            entries = response.json()["entries"] if response.is_success else []
            return [e for e in entries if e["type"] == "particulars_erased"] or None

        for appeal_id in ids:

            async def logged(appeal_id: str = appeal_id) -> list[dict[str, Any]] | None:
                return await audited(appeal_id)

            (entry,) = await eventually(logged, f"the erasure of {appeal_id} in the audit log")
            assert entry["producer"] == "intake"
            assert entry["event_id"] == identity.particulars_erased_event_id(appeal_id)
            view = await client.get(f"{pipeline.url('intake')}/v1/appeals/{appeal_id}", headers=ops)
            assert view.json()["erased"] is True and view.json()["status"] == "decided"
            # updated_at follows the lifecycle (here: to the decision), received_at stays.
            assert view.json()["updated_at"] > view.json()["received_at"]
        verified = await client.get(f"{pipeline.url('audit')}/v1/audit/verify", headers=ops)
        assert verified.json()["ok"] is True, verified.text

        records = await every_record_but_the_surfaces_own(pipeline)
        blobs = [(topic, raw(record)) for topic, record in records]
        stored = await everything_stored(pipeline)
        logs = pipeline.full_logs().encode()
        for secret in secrets:
            leaks = [topic for topic, blob in blobs if secret in blob]
            assert not leaks, f"{secret!r} found on {leaks}"
            assert secret not in stored, f"{secret!r} found in the store"
            assert secret not in logs, f"{secret!r} found in a service's log"

        # The pseudonym stays on the events, cases and log entries, but nothing links it back to
        # the person: intake's keyed hash of them is no longer stored anywhere.
        lifecycle = [
            topics.APPEAL_LIFECYCLE.decode(record.value)
            for topic, record in records
            if topic == topics.APPEAL_LIFECYCLE.name
        ]
        pseudonyms = {
            e.submitted.appellant_pseudonym
            for e in lifecycle
            if e.appeal_id in ids and e.HasField("submitted")
        }
        assert len(pseudonyms) == 1 and pseudonyms.pop().encode() in stored
        announced = {
            e.appeal_id: e.particulars_erased for e in lifecycle if e.appeal_id in ids
            if e.HasField("particulars_erased")
        }  # fmt: skip
        assert sorted(announced) == sorted(ids)
        assert {a.erasure_id for a in announced.values()} == {erasure_id}
        assert person not in stored

        again = await client.post(
            f"{pipeline.url('intake')}/v1/erasures",
            json={"platform": PLATFORM, "user_id": first["appellant"]["user_id"]},
            headers=surface,
        )
        assert again.status_code == 200 and again.json()["appeals_erased"] == 0
