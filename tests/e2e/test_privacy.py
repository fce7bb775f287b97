"""Black-box: the appellant's personal data stays in intake.

Appeals go in through the running intake (REST, gRPC and a Kafka request) with a user id, a
statement, an email address, a phone number and an attachment link found nowhere else; reviewers
work them on the desk (one escalated to a senior), notifications tells the people, overturns send
restore commands. Then every record on every topic the appeals touched is read back from the real
broker, values, keys and headers, and none holds any of it; nor does any service's log or the
audit trail. The reviewers saw the statement, the people were told, and the pseudonym on the
submitted event is intake's keyed hash. The only holder is intake, which serves the particulars
to the pipeline's own services (service role) and refuses everyone else.

(``appeals.requests.v1`` is left out of the search: it is the surfaces' way *into* intake, like a
REST body, so it carries what the surface submits.)
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import httpx
import pytest

from appeals.v1 import appeal_pb2, intake_pb2, intake_pb2_grpc
from appeals_devstack import devkeys
from appeals_runtime import store, topics, vocabulary
from services.intake import identity
from services.intake.appellants import APPELLANTS
from tests.e2e.conftest import Pipeline
from tests.e2e.test_appeal_lifecycle import (
    SENIOR,
    appeal_body,
    eventually,
    review,
    submit_grpc,
    submit_kafka,
    submit_rest,
)
from tests.integration.kafka_helpers import read_to_end

pytestmark = pytest.mark.e2e

OVERTURNED, UPHELD = appeal_pb2.OUTCOME_OVERTURNED, appeal_pb2.OUTCOME_UPHELD


def personal_body(platform: str, run: str, n: int) -> dict[str, Any]:
    """An appeal whose personal data is unique to this run, so any trace of it is a leak."""
    body = appeal_body(platform, locale="en-GB")
    body["appellant"] = {
        "user_id": f"9{run}{n}",
        "contact": {
            "email": f"appellant-{run}-{n}@example.org",
            "phone": f"+4477{int(run, 16) % 10**7:07d}{n}",
            "preferred_channel": "email",
            "time_zone": "Europe/London",
        },
    }
    body["statement"] = f"Statement {run}-{n}: it was a quotation from the evening news."
    body["attachments"] = [
        {"media_type": "image/png", "uri": f"https://cdn.example/{run}-{n}.png", "size_bytes": 1}
    ]
    return body


def secrets_of(body: dict[str, Any]) -> list[bytes]:
    contact = body["appellant"]["contact"]
    return [
        value.encode()
        for value in (
            body["appellant"]["user_id"],
            body["statement"],
            contact["email"],
            contact["phone"],
            contact["phone"].lstrip("+"),
            body["attachments"][0]["uri"],
        )
    ]


async def test_personal_data_is_found_nowhere_but_in_intake(
    pipeline: Pipeline, producer: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    bodies = {
        "rest": personal_body("facebook", run, 1),
        "grpc": personal_body("instagram", run, 2),
        "kafka": personal_body("whatsapp", run, 3),
    }
    async with httpx.AsyncClient(timeout=20) as client:
        answer = await submit_rest(client, pipeline, bodies["rest"], uuid.uuid4().hex)
        assert answer.status_code == 202, answer.text
    ids = {
        "rest": answer.json()["appeal_id"],
        "grpc": await submit_grpc(pipeline, bodies["grpc"]),
        "kafka": await submit_kafka(pipeline, bodies["kafka"], producer),
    }
    statements = {ids[way]: bodies[way]["statement"] for way in ids}

    cases = await review(
        pipeline,
        {ids["rest"]: SENIOR, ids["grpc"]: OVERTURNED, ids["kafka"]: UPHELD},
        agent="privacy-reviewer",
        statements=statements,
    )
    cases |= await review(
        pipeline, {ids["rest"]: OVERTURNED}, agent="privacy-senior", statements=statements
    )
    for way, appeal_id in ids.items():
        assert cases[appeal_id].attachments[0].uri == bodies[way]["attachments"][0]["uri"]
    trails = await told_and_logged(pipeline, list(ids.values()))

    records = await every_record_but_the_surfaces_own(pipeline)
    lifecycle = [
        event
        for topic, record in records
        if topic == topics.APPEAL_LIFECYCLE.name
        and (event := topics.APPEAL_LIFECYCLE.decode(record.value)).appeal_id in statements
    ]
    for appeal_id in ids.values():
        kinds = {e.WhichOneof("payload") for e in lifecycle if e.appeal_id == appeal_id}
        assert {"submitted", "routed", "claimed", "decided", "notified"} <= kinds
    assert any(e.HasField("escalated") and e.appeal_id == ids["rest"] for e in lifecycle)
    facebook = topics.restore_commands_topic(appeal_pb2.PLATFORM_FACEBOOK)
    assert any(
        topic == facebook.name and facebook.decode(record.value).appeal_id == ids["rest"]
        for topic, record in records
    )

    blobs = [(topic, raw(record)) for topic, record in records]
    logs = pipeline.full_logs().encode()
    for appeal_id in ids.values():  # the search does see the appeals' records and log lines
        assert appeal_id.encode() in logs
        assert len([topic for topic, blob in blobs if appeal_id.encode() in blob]) >= 8
    for way, body in bodies.items():
        for secret in secrets_of(body):
            leaks = [topic for topic, blob in blobs if secret in blob]
            assert not leaks, f"{way}: {secret!r} found on {leaks}"
            assert secret not in logs, f"{way}: {secret!r} found in a service's log"
            assert all(secret not in content for content in trails)

    # The pseudonym on each submitted event is the random one intake keeps for that person,
    # under its keyed hash of platform and user id (forgetting that link is an erasure).
    key = (pipeline.signing_key.parent / "pseudonym-key.hex").read_bytes().strip()
    mongo = store.create_client(pipeline.infra.mongodb_url, app_name="e2e-privacy")
    try:
        appellants = mongo[pipeline.database][APPELLANTS]
        for way, appeal_id in ids.items():
            (submitted,) = [
                e.submitted
                for e in lifecycle
                if e.appeal_id == appeal_id and e.HasField("submitted")
            ]
            platform = vocabulary.PLATFORMS[bodies[way]["platform"]]
            person = identity.appellant_key(key, platform, bodies[way]["appellant"]["user_id"])
            kept = await appellants.find_one({"_id": person})
            assert kept is not None and submitted.appellant_pseudonym == kept["pseudonym"]
            assert submitted.facts.locale == "en-GB"
    finally:
        await mongo.close()

    # Routing and notifications read the particulars; intake logged who read whose, nothing more.
    readers = {
        (line_value(line, "appeal_id"), line_value(line, "reader"))
        for line in pipeline.log_lines("intake")
        if '"appeal particulars read"' in line
    }
    for appeal_id in ids.values():
        assert {(appeal_id, "routing"), (appeal_id, "notifications")} <= readers


async def told_and_logged(pipeline: Pipeline, appeal_ids: list[str]) -> list[bytes]:
    """Waits until each appellant was told the decision (on their platform's channel: no SMTP
    server here, so email cannot be tried) and audit logged it; returns the audit trails."""
    ops = {"Authorization": f"Bearer {pipeline.ops_token()}"}
    trails = []
    async with httpx.AsyncClient(timeout=20, headers=ops) as client:
        for appeal_id in appeal_ids:

            async def told(appeal_id: str = appeal_id) -> list[dict[str, Any]] | None:
                url = f"{pipeline.url('notifications')}/v1/appeals/{appeal_id}/notifications"
                response = await client.get(url)
                items = response.json().get("notifications", []) if response.is_success else []
                return [n for n in items if n["kind"] == "decided"] or None

            (decision,) = await eventually(told, f"the decision notification of {appeal_id}")
            assert decision["recipient"] == "user_id"

            async def trail(appeal_id: str = appeal_id) -> bytes | None:
                response = await client.get(f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail")
                kinds = (
                    [e["type"] for e in response.json()["entries"]] if response.is_success else []
                )
                return response.content if {"decided", "notified"} <= set(kinds) else None

            trails.append(await eventually(trail, f"the trail of {appeal_id}"))
        verified = await client.get(f"{pipeline.url('audit')}/v1/audit/verify")
        assert verified.json()["ok"] is True
    return trails


async def every_record_but_the_surfaces_own(pipeline: Pipeline) -> list[tuple[str, Any]]:
    """Every record on every topic of the pipeline (DLQs included), as (topic, record)."""
    servers = pipeline.infra.kafka_bootstrap_servers
    return [
        (name, record)
        for name in topics.all_topic_names()
        if name != topics.APPEAL_REQUESTS.name
        for record in await read_to_end(servers, name)
    ]


def raw(record: Any) -> bytes:
    """A record's key, value and headers, as bytes to search."""
    parts = [record.key or b"", record.value or b""]
    parts += [part for name, value in record.headers for part in (name.encode(), value)]
    return b"\x00".join(parts)


def line_value(line: str, name: str) -> str:
    return str(json.loads(line).get(name, ""))


async def test_intake_serves_particulars_to_services_and_refuses_everyone_else(
    pipeline: Pipeline,
) -> None:
    body = personal_body("horizon", uuid.uuid4().hex[:8], 4)
    async with httpx.AsyncClient(timeout=20) as client:
        answer = await submit_rest(client, pipeline, body, uuid.uuid4().hex)
    appeal_id = answer.json()["appeal_id"]
    request = intake_pb2.GetAppealParticularsRequest(appeal_id=appeal_id)
    service_token = devkeys.mint_token(pipeline.signing_key, role="service", subject="e2e-svc")
    tokens = {
        "surface": pipeline.surface_token("horizon"),
        "agent": pipeline.agent_token("e2e-agent"),
        "ops": pipeline.ops_token(),
    }
    async with grpc.aio.insecure_channel(pipeline.intake_grpc) as channel:
        stub = intake_pb2_grpc.IntakeStub(channel)
        for role, token in tokens.items():
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetAppealParticulars(
                    request, metadata=(("authorization", f"Bearer {token}"),)
                )
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, role
        served = await stub.GetAppealParticulars(
            request, metadata=(("authorization", f"Bearer {service_token}"),)
        )
    particulars = served.particulars
    assert (particulars.user_id, particulars.statement) == (
        body["appellant"]["user_id"],
        body["statement"],
    )
    assert particulars.contact.email == body["appellant"]["contact"]["email"]
