"""Hundreds of submits at once, through intake's real app on the real broker and store: every
request gets an answer it may get (never a dropped connection, a 500 or an exception out of the
app), and every accepted appeal exists exactly once, in the store and on the topic.

The load mixes what real traffic holds: new appeals, duplicates of a request in flight, a key
reused for another body, a second appeal about an open item, and an appellant flooding.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from appeals import topics
from appeals.v1 import intake_pb2, intake_pb2_grpc
from appeals_devstack.processes import free_port
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.grpc_server import GrpcServer
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import Limit
from services.intake import grpc_api, repository
from services.intake.schemas import AppealIn
from tests.support.bodies import fresh_body
from tests.support.intake_app import start_intake
from tests.support.kafka import read_to_end

pytestmark = pytest.mark.integration

CONCURRENCY = 48
ANSWERS_ALLOWED = {202, 409, 422, 429, 503}
FLOODER_BURST = 3


@dataclass(frozen=True)
class Request:
    kind: str
    key: str
    body: dict[str, Any]
    group: str  # requests that belong together: the same key, or the same item


def planned_load() -> list[Request]:
    keys = [uuid.uuid4().hex for _ in range(200)]
    load = [Request("fresh", key, fresh_body(), key) for key in keys]
    for _ in range(20):  # a request sent twice at once (a client retrying too early)
        key, body = uuid.uuid4().hex, fresh_body()
        load += [Request("duplicate", key, body, key)] * 2
    for _ in range(10):  # one key, two different bodies
        key = uuid.uuid4().hex
        load += [Request("key_reused", key, fresh_body(), key) for _ in range(2)]
    for _ in range(10):  # two appeals about the same item, with their own keys
        body = fresh_body()
        item = str(uuid.uuid4())
        load += [
            Request("same_item", uuid.uuid4().hex, body | {"statement": f"try {n}"}, item)
            for n in range(2)
        ]
    flooder = fresh_body()
    load += [
        Request("flood", uuid.uuid4().hex,
                flooder | {"subject": {"kind": "post", "id": uuid.uuid4().hex[:12]}}, "flood")
        for _ in range(20)
    ]  # fmt: skip
    random.shuffle(load)
    return load


async def test_hundreds_of_concurrent_submits_get_allowed_answers_and_each_acceptance_once(
    infra: Infrastructure,
    db: store.Database,
    producer: EventProducer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    intake = await start_intake(
        db, producer, tmp_path, limits={"appellant": Limit(burst=FLOODER_BURST, per_hour=0)}
    )
    headers = intake.headers()  # one token for all: minting is not what is tested
    load = planned_load()
    answers: list[tuple[Request, httpx.Response | BaseException]] = []
    pending = collections.deque(load)

    async def client() -> None:
        while pending:
            request = pending.popleft()
            try:
                response = await intake.client.post(
                    "/v1/appeals",
                    json=request.body,
                    headers=headers | {"Idempotency-Key": request.key},
                )
                answers.append((request, response))
            except Exception as error:  # the app let an exception out: a dropped connection
                answers.append((request, error))

    caplog.set_level(logging.ERROR)
    try:
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    finally:
        await intake.client.aclose()

    escaped = [(r.kind, repr(a)) for r, a in answers if isinstance(a, BaseException)]
    assert escaped == []
    responses = [(r, a) for r, a in answers if isinstance(a, httpx.Response)]
    assert len(responses) == len(load)
    codes = collections.Counter(a.status_code for _, a in responses)
    assert set(codes) <= ANSWERS_ALLOWED, codes
    for _, answer in responses:
        if answer.status_code != 202:
            assert answer.headers["content-type"] == "application/problem+json", answer.text
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) >= 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

    accepted: dict[str, set[str]] = collections.defaultdict(set)  # group -> appeal ids
    by_key: dict[str, set[str]] = collections.defaultdict(set)
    for request, answer in responses:
        if answer.status_code == 202:
            accepted[request.group].add(answer.json()["appeal_id"])
            by_key[request.key].add(answer.json()["appeal_id"])
    # One appeal per key (a duplicate is answered with the first's id or 409), and at most one
    # open appeal per item, however the requests interleaved.
    assert all(len(ids) == 1 for ids in by_key.values())
    assert all(len(ids) == 1 for group, ids in accepted.items() if group != "flood")
    assert len(accepted["flood"]) <= FLOODER_BURST
    kinds = collections.Counter(r.kind for r, a in responses if a.status_code == 422)
    assert set(kinds) <= {"key_reused"}
    appeal_ids = {appeal_id for ids in by_key.values() for appeal_id in ids}
    assert len(appeal_ids) == len(by_key)  # no two keys share an appeal
    assert codes[202] >= 1

    # Each accepted appeal is recorded once and shows, and was published once.
    records = await db[repository.APPEALS].find({"_id": {"$in": sorted(appeal_ids)}}).to_list()
    assert sorted(r["_id"] for r in records) == sorted(appeal_ids)
    marks = (
        await db[repository.ACKNOWLEDGEMENTS].find({"_id": {"$in": sorted(appeal_ids)}}).to_list()
    )
    assert sorted(m["_id"] for m in marks) == sorted(appeal_ids)
    submitted = collections.Counter(
        event.appeal_id
        for event in (
            topics.APPEAL_LIFECYCLE.decode(record.value)
            for record in await read_to_end(
                infra.kafka_bootstrap_servers, topics.APPEAL_LIFECYCLE.name
            )
        )
        if event.appeal_id in appeal_ids and event.WhichOneof("payload") == "submitted"
    )
    assert submitted == dict.fromkeys(appeal_ids, 1)


async def test_submits_beyond_the_admission_limit_are_refused_503_and_the_rest_accepted_once(
    infra: Infrastructure, db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    """More submits at once than intake takes in hand: the excess is answered 503 problem+json
    with Retry-After at once (backpressure, DESIGN), the rest are accepted, each exactly once."""
    limit, burst = 4, 40
    intake = await start_intake(db, producer, tmp_path, max_requests=limit)
    headers = intake.headers()
    keys = [uuid.uuid4().hex for _ in range(burst)]
    try:
        answers = await asyncio.gather(
            *(
                intake.client.post(
                    "/v1/appeals", json=fresh_body(), headers=headers | {"Idempotency-Key": key}
                )
                for key in keys
            )
        )
    finally:
        await intake.client.aclose()

    codes = collections.Counter(answer.status_code for answer in answers)
    assert set(codes) == {202, 503}, codes
    assert limit <= codes[202] < burst
    for answer in answers:
        if answer.status_code == 503:
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["title"] == "Service overloaded"
    accepted = {answer.json()["appeal_id"] for answer in answers if answer.status_code == 202}
    assert len(accepted) == codes[202]
    records = await db[repository.APPEALS].find({"_id": {"$in": sorted(accepted)}}).to_list()
    assert sorted(r["_id"] for r in records) == sorted(accepted)
    # A refused request left nothing behind: its key may be sent again and is accepted.
    refused_key = next(k for k, a in zip(keys, answers, strict=True) if a.status_code == 503)
    retried = await start_intake(db, producer, tmp_path)
    try:
        again = await retried.client.post(
            "/v1/appeals", json=fresh_body(), headers=headers | {"Idempotency-Key": refused_key}
        )
    finally:
        await retried.client.aclose()
    assert again.status_code == 202, again.text


async def test_grpc_submits_beyond_the_admission_limit_are_refused_unavailable(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    """gRPC's SubmitAppeal takes as many submits in hand as REST does, and refuses the next one
    UNAVAILABLE at once (the status gRPC clients retry); the rest are accepted, once each."""
    limit, burst = 4, 40
    intake = await start_intake(db, producer, tmp_path)
    port = free_port()
    servicer = grpc_api.IntakeServicer(intake.intake, intake.verifier, max_submits=limit)
    server = GrpcServer(grpc_api.register(servicer), host="127.0.0.1", port=port)
    task = asyncio.create_task(server.run())
    metadata = (("authorization", f"Bearer {intake.token()}"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = intake_pb2_grpc.IntakeStub(channel)

            async def submit() -> intake_pb2.SubmitAppealResponse | grpc.aio.AioRpcError:
                request = intake_pb2.SubmitAppealRequest(
                    idempotency_key=uuid.uuid4().hex,
                    submission=AppealIn.model_validate(fresh_body()).to_proto(),
                )
                try:
                    answer: intake_pb2.SubmitAppealResponse = await stub.SubmitAppeal(
                        request, metadata=metadata
                    )
                    return answer
                except grpc.aio.AioRpcError as error:
                    return error

            answers = await asyncio.gather(*(submit() for _ in range(burst)))
    finally:
        await server.stop()
        await task
        await intake.client.aclose()

    refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    accepted = {a.appeal_id for a in answers if isinstance(a, intake_pb2.SubmitAppealResponse)}
    assert {error.code() for error in refused} == {grpc.StatusCode.UNAVAILABLE}
    assert all("requests are in hand" in (error.details() or "") for error in refused)
    assert limit <= len(accepted) < burst and len(accepted) + len(refused) == burst
    assert servicer.submits.count == 0, "every place is given back"
    records = await db[repository.APPEALS].find({"_id": {"$in": sorted(accepted)}}).to_list()
    assert sorted(r["_id"] for r in records) == sorted(accepted)
