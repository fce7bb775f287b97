"""The same rules over gRPC and Kafka: INVALID_ARGUMENT with BadRequest details; an invalid
request event gets a rejection the surface can consume and a DLQ entry with reason headers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from appeals import topics
from appeals.v1 import intake_pb2, intake_pb2_grpc
from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.grpc_server import GrpcServer
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import ConsumerRunner
from appeals_runtime.kafka.producer import EventProducer
from services.intake import grpc_api
from services.intake.consumer import RequestEvents
from services.intake.schemas import AppealIn
from tests.support.bodies import fresh_body
from tests.support.intake_app import start_intake
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


def verifier(key_dir: Path) -> TokenVerifier:
    _, jwks = devkeys.ensure(key_dir)
    return devkeys.dev_verifier(jwks)


async def test_grpc_answers_invalid_argument_with_field_violations(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    intake = await start_intake(db, producer, tmp_path)
    port = free_port()
    server = GrpcServer(
        grpc_api.register(grpc_api.IntakeServicer(intake.intake, verifier(tmp_path))),
        host="127.0.0.1", port=port,
    )  # fmt: skip
    task = asyncio.create_task(server.run())
    try:
        # What gRPC can carry and the REST schema would refuse before intake saw it.
        submission = AppealIn.model_validate(fresh_body()).to_proto()
        submission.locale = "German"
        submission.ClearField("country")
        metadata = (("authorization", f"Bearer {intake.token()}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = intake_pb2_grpc.IntakeStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.SubmitAppeal(
                    intake_pb2.SubmitAppealRequest(idempotency_key="", submission=submission),
                    metadata=metadata,
                )
            ok = await stub.SubmitAppeal(
                intake_pb2.SubmitAppealRequest(
                    idempotency_key=uuid.uuid4().hex,
                    submission=AppealIn.model_validate(fresh_body()).to_proto(),
                ),
                metadata=metadata,
            )
            # Raw bytes, as a client built from a newer contract sends them: an unknown field
            # (15) on the request envelope, beside a valid submission.
            envelope = (
                intake_pb2.SubmitAppealRequest(
                    idempotency_key=uuid.uuid4().hex,
                    submission=AppealIn.model_validate(fresh_body()).to_proto(),
                ).SerializeToString()
                + b"\x78\x01"
            )
            raw_submit = channel.unary_unary(
                "/appeals.v1.Intake/SubmitAppeal",
                request_serializer=lambda raw: raw,
                response_deserializer=intake_pb2.SubmitAppealResponse.FromString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await raw_submit(envelope, metadata=metadata)
            got = await stub.GetAppeal(
                intake_pb2.GetAppealRequest(appeal_id=ok.appeal_id), metadata=metadata
            )
            with pytest.raises(grpc.aio.AioRpcError) as anonymous:
                await stub.GetAppeal(intake_pb2.GetAppealRequest(appeal_id=ok.appeal_id))
            ops = (("authorization", f"Bearer {intake.token(role='ops')}"),)
            recorded = await stub.RecordEvasionIdentifiers(
                intake_pb2.RecordEvasionIdentifiersRequest(hashes=[f"h-{uuid.uuid4().hex}"]),
                metadata=ops,
            )
            with pytest.raises(grpc.aio.AioRpcError) as surface_may_not:
                await stub.RecordEvasionIdentifiers(
                    intake_pb2.RecordEvasionIdentifiersRequest(hashes=["h-12345678"]),
                    metadata=metadata,
                )
    finally:
        await server.stop()
        await task
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    fields = {v.field for v in bad_request.field_violations}
    assert fields == {"idempotency_key", "locale", "country"}
    assert got.appeal.appeal_id == ok.appeal_id
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown_status = rpc_status.from_call(unknown.value)
    assert unknown_status is not None
    named = error_details_pb2.BadRequest()
    assert unknown_status.details[0].Unpack(named)
    assert [v.field for v in named.field_violations] == ["#15"]
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert recorded.added == 1
    assert surface_may_not.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_invalid_request_event_is_rejected_and_dead_lettered(
    db: store.Database, producer: EventProducer, infra: Infrastructure, tmp_path: Path
) -> None:
    intake = await start_intake(db, producer, tmp_path)
    bad_id, good_id, forged_id, envelope_id, rekeyed_id, agent_id = (
        f"req-{uuid.uuid4().hex}" for _ in range(6)
    )
    bad = AppealIn.model_validate(fresh_body()).to_proto()
    bad.country = "Germany"  # what a Kafka request can carry
    good = AppealIn.model_validate(fresh_body()).to_proto()
    requests = [
        (bad_id, intake.token(), bad),
        (forged_id, "not-a-token", good),
        (good_id, intake.token(), good),
        (agent_id, intake.token(role="agent"), good),
    ]
    for request_id, token, submission in requests:
        await producer.publish(
            topics.APPEAL_REQUESTS,
            intake_pb2.AppealRequest(request_id=request_id, token=token, submission=submission),
        )

    # As any Kafka client could send them: an unknown field (15, a varint) on the envelope
    # itself, and a valid request under another record key.
    def raw(request_id: str) -> bytes:
        fresh = AppealIn.model_validate(fresh_body()).to_proto()
        message = intake_pb2.AppealRequest(request_id=request_id, token=intake.token())
        message.submission.CopyFrom(fresh)
        return message.SerializeToString()

    plain = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await plain.start()
    try:
        await plain.send_and_wait(
            topics.APPEAL_REQUESTS.name, raw(envelope_id) + b"\x78\x01", key=envelope_id.encode()
        )
        await plain.send_and_wait(topics.APPEAL_REQUESTS.name, raw(rekeyed_id), key=b"someone")
    finally:
        await plain.stop()
    ours = (bad_id, good_id, forged_id, envelope_id, rekeyed_id, agent_id)
    answered: dict[str, intake_pb2.AppealRequestOutcome] = {}
    done = asyncio.Event()
    handler = RequestEvents(intake.intake, verifier(tmp_path), producer)

    async def handle(message: object) -> None:
        request_id = message.payload.request_id  # type: ignore[attr-defined]
        try:
            await handler.handle(message)  # type: ignore[arg-type]
        finally:
            if request_id in ours:
                answered[request_id] = intake_pb2.AppealRequestOutcome()
                if len(answered) == len(ours):
                    done.set()

    group = f"g-{uuid.uuid4().hex[:8]}"
    runner = ConsumerRunner(name="requests-test", bootstrap_servers=infra.kafka_bootstrap_servers,
                            group_id=group, topics=[topics.APPEAL_REQUESTS],
                            handler=handle, producer=producer)  # fmt: skip
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(done.wait(), 30)
    await runner.stop()
    await task

    outcomes = {}
    for record in await read_all(infra.kafka_bootstrap_servers, topics.APPEAL_REQUEST_OUTCOMES.name,
                                 expect=100_000, timeout_s=2):  # fmt: skip
        if h.as_dict(record.headers).get(h.PRODUCER) != b"tests":
            continue  # answered by the e2e pipeline's intake, which trusts another key
        outcome = topics.APPEAL_REQUEST_OUTCOMES.decode(record.value)
        outcomes[outcome.request_id] = outcome
    assert outcomes[good_id].WhichOneof("result") == "accepted"
    assert outcomes[bad_id].WhichOneof("result") == "rejected"
    assert [v.field for v in outcomes[bad_id].rejected.violations] == ["country"]
    assert [v.field for v in outcomes[forged_id].rejected.violations] == ["token"]
    (wrong_role,) = outcomes[agent_id].rejected.violations
    assert wrong_role.field == "token" and "needs a surface token, not an agent token" in (
        wrong_role.description
    )
    assert [v.field for v in outcomes[envelope_id].rejected.violations] == ["#15"]
    (rekeyed,) = outcomes[rekeyed_id].rejected.violations
    assert rekeyed.field == "key" and rekeyed_id in rekeyed.description
    # Only this test's consumer group: the e2e pipeline's intake also reads the requests topic.
    dead = {
        r.key.decode(): h.as_dict(r.headers)
        for r in await read_all(
            infra.kafka_bootstrap_servers, topics.APPEAL_REQUESTS.dlq, expect=100_000, timeout_s=2
        )
        if h.as_dict(r.headers).get(h.DLQ_CONSUMER_GROUP) == group.encode()
    }
    assert dead[bad_id][h.DLQ_ERROR_FIELD] == b"country"
    assert dead[forged_id][h.DLQ_ERROR_FIELD] == b"token"
    assert dead[envelope_id][h.DLQ_ERROR_FIELD] == b"#15"
    assert dead["someone"][h.DLQ_ERROR_FIELD] == b"key"
    assert good_id not in dead
