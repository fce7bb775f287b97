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

from appeals import topics, vocabulary
from appeals.v1 import appeal_pb2, intake_pb2, intake_pb2_grpc
from appeals_devstack import devkeys
from appeals_runtime import store
from services.intake import identity
from services.intake.appellants import APPELLANTS
from tests.e2e.conftest import Pipeline
from tests.support.personal_data import (
    every_record_but_the_surfaces_own,
    personal_body,
    raw,
    secrets_of,
    told_and_logged,
)
from tests.support.pipeline import SENIOR, review, submit_grpc, submit_kafka, submit_rest

pytestmark = pytest.mark.e2e

OVERTURNED, UPHELD = appeal_pb2.OUTCOME_OVERTURNED, appeal_pb2.OUTCOME_UPHELD


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
        appellants = mongo[store.service_database(pipeline.database, "intake")][APPELLANTS]
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
