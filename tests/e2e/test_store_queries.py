"""Every store command on the hot path names its documents by `_id`.

FerretDB answers a filter that names the `_id` by value from its index and reads the whole
collection for anything else, so a query that stops naming the `_id` turns a constant cost into
one that grows with every appeal ever stored. The services log the shape of each command they
send (`APPEALS_STORE_QUERY_LOG`, set by the e2e pipeline). While appeals from every platform are
submitted, routed, claimed, decided, notified and audited here, every command must select by
`_id`, the stack's periodic work meanwhile included. The exceptions are listed below with their
reason: each reads a small collection that does not grow with appeals.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from appeals.v1 import appeal_pb2
from appeals_runtime import store
from tests.e2e.conftest import Pipeline
from tests.support.bodies import appeal_body
from tests.support.pipeline import review, submit_rest
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

PLATFORMS = ("facebook", "instagram", "whatsapp", "horizon")
# (service, collection, command): why it may read the whole collection.
ALLOWED_SCANS = {
    # PyMongo sends count_documents as an aggregate ($match, $group).
    ("routing", "agents", "aggregate"): "the agents-online gauge: people, not appeals (every 30 s)",
    # Live-help chats waiting for an agent, and those in progress: only live chats are in them
    # (a closed chat leaves both), read at most once a second per instance while agents stream.
    ("routing", "waiting_chats", "find"): "the live chat queue, for offers",
    ("routing", "active_chats", "find"): "the chats in progress, for agents' chat capacity",
    # Cases out with an external body: a case leaves the set when the body answers. The referral
    # watch reads it once a minute (ROUTING_REFERRAL_CHECK_S) for the open/overdue gauges, so a
    # run of this test sees it only when the minute turns inside it.
    ("routing", "referrals", "find"): "the live referrals, for the referral gauges",
}


def _scans(queries: list[dict[str, Any]]) -> Counter[tuple[str, str, str, str]]:
    found: Counter[tuple[str, str, str, str]] = Counter()
    for q in queries:
        where = (q["service"], q["collection"], q["command"])
        if q["selects"] not in ("_id", "insert") and where not in ALLOWED_SCANS:
            found[(*where, ",".join(q.get("fields", [])))] += 1
    return found


async def test_appeals_flow_through_every_service_with_id_lookups_only(pipeline: Pipeline) -> None:
    since = time.time()
    plan: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for platform in PLATFORMS:
            body = appeal_body(platform, kind="account" if platform == "whatsapp" else "post")
            answer = await submit_rest(client, pipeline, body, uuid.uuid4().hex)
            assert answer.status_code == 202, answer.text
            plan[answer.json()["appeal_id"]] = appeal_pb2.OUTCOME_OVERTURNED
        await review(pipeline, plan)

        async def told_and_audited() -> bool:
            for appeal_id in plan:
                trail = await client.get(
                    f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail",
                    headers={"Authorization": f"Bearer {pipeline.ops_token()}"},
                )
                entries = trail.json().get("entries", []) if trail.is_success else []
                kinds = {entry["type"] for entry in entries}
                if not {"submitted", "routed", "decided", "notified"} <= kinds:
                    return False
            return True

        await eventually(told_and_audited, "every appeal decided, notified and audited")
    queries = pipeline.store_queries(since)
    services = {q["service"] for q in queries}
    assert {"intake", "routing", "notifications", "audit"} <= services, services
    assert not _scans(queries), _scans(queries)
    # Each service works in a database of its own (on FerretDB's SQLite backend, a file with a
    # writer of its own): no service's writes wait for another's.
    elsewhere = Counter(
        (q["service"], q["database"])
        for q in queries
        if q["database"] != store.service_database(pipeline.database, q["service"])
    )
    assert not elsewhere, elsewhere
