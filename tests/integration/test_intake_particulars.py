"""The appellant's particulars: intake serves them to the pipeline's own services and to nobody
else, logs every read without the data, and a client sees intake being away as transient.

Against intake's real gRPC servicer, the real store and broker, and the shared client routing and
notifications use.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from appeals.v1 import intake_pb2, intake_pb2_grpc
from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_runtime.errors import NotFound
from appeals_runtime.intake_client import (
    IntakeParticulars,
    ParticularsUnavailable,
    ServiceToken,
    service_token_problem,
)
from tests.support.bodies import fresh_body
from tests.support.intake_app import IntakeUnderTest, serving_grpc
from tests.support.notifications import eventually

pytestmark = pytest.mark.integration

STATEMENT = "My cousin Zygmunt wrote this, quoting the news; reach me at zyg@example.org."
CONTACT = {"email": "zyg.particulars@example.org", "phone": "+4915112340001"}


def personal_body() -> dict[str, Any]:
    body = fresh_body(statement=STATEMENT)
    body["appellant"] = dict(body["appellant"]) | {"contact": CONTACT}
    body["attachments"] = [
        {"media_type": "image/png", "uri": "https://cdn.example/zyg.png", "size_bytes": 2048}
    ]
    return body


def token_file(intake: IntakeUnderTest, path: Path, role: str, subject: str) -> Path:
    path.write_text(devkeys.mint_token(intake.signing_key, role=role, subject=subject))
    return path


async def test_only_service_callers_read_particulars_and_every_read_is_logged_without_them(
    intake: IntakeUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    body = personal_body()
    submitted = await intake.submit(body)
    assert submitted.status_code == 202, submitted.text
    appeal_id = submitted.json()["appeal_id"]
    request = intake_pb2.GetAppealParticularsRequest(appeal_id=appeal_id)

    def as_(role: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {intake.token(role)}"),)

    refused: dict[str, grpc.StatusCode] = {}
    caplog.set_level(logging.INFO, logger="services.intake.service")
    async with serving_grpc(intake) as target, grpc.aio.insecure_channel(target) as channel:
        stub = intake_pb2_grpc.IntakeStub(channel)
        for role in ("surface", "agent", "ops", "anonymous"):
            metadata = () if role == "anonymous" else as_(role)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.GetAppealParticulars(request, metadata=metadata)
            refused[role] = error.value.code()
        served = await stub.GetAppealParticulars(request, metadata=as_("service"))
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.GetAppealParticulars(
                intake_pb2.GetAppealParticularsRequest(appeal_id="ap_unknown"),
                metadata=as_("service"),
            )

    assert refused == {
        "surface": grpc.StatusCode.PERMISSION_DENIED,
        "agent": grpc.StatusCode.PERMISSION_DENIED,
        "ops": grpc.StatusCode.PERMISSION_DENIED,
        "anonymous": grpc.StatusCode.UNAUTHENTICATED,
    }
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    particulars = served.particulars
    assert particulars.appeal_id == appeal_id
    assert particulars.user_id == body["appellant"]["user_id"]
    assert (particulars.contact.email, particulars.contact.phone) == (
        CONTACT["email"],
        CONTACT["phone"],
    )
    assert particulars.statement == STATEMENT
    assert [a.uri for a in particulars.attachments] == ["https://cdn.example/zyg.png"]

    reads = [r for r in caplog.records if r.getMessage() == "appeal particulars read"]
    assert [(r.appeal_id, r.reader) for r in reads] == [(appeal_id, "service-tests")]  # type: ignore[attr-defined]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (body["appellant"]["user_id"], STATEMENT, CONTACT["email"], CONTACT["phone"]):
        assert secret not in logged


async def test_the_client_reads_particulars_and_treats_intake_being_away_as_transient(
    intake: IntakeUnderTest, tmp_path: Path
) -> None:
    submitted = await intake.submit(personal_body())
    appeal_id = submitted.json()["appeal_id"]
    service = token_file(intake, tmp_path / "service.jwt", "service", "routing")
    agent = token_file(intake, tmp_path / "agent.jwt", "agent", "alice")
    port = free_port()
    target = f"127.0.0.1:{port}"

    async with IntakeParticulars(target, ServiceToken(service), timeout_s=2) as client:
        with pytest.raises(ParticularsUnavailable):
            await client.get(appeal_id)  # nothing listens yet
        async with serving_grpc(intake, port):

            async def served() -> intake_pb2.AppealParticulars | None:
                with contextlib.suppress(ParticularsUnavailable):  # reconnecting
                    return await client.get(appeal_id)
                return None

            assert (await eventually(served, "intake back")).statement == STATEMENT
            with pytest.raises(NotFound):
                await client.get(f"ap_{uuid.uuid4().hex}")
            # A rotated token is picked up without a restart: here a wrong one, refused.
            service.write_text(agent.read_text() + "\n")
            with pytest.raises(ParticularsUnavailable, match="PERMISSION_DENIED"):
                await client.get(appeal_id)


def test_a_service_refuses_to_start_with_a_token_that_cannot_read_particulars(
    intake: IntakeUnderTest,
) -> None:
    service = devkeys.mint_token(intake.signing_key, role="service", subject="routing")
    agent = devkeys.mint_token(intake.signing_key, role="agent", subject="alice")
    expired = devkeys.mint_token(intake.signing_key, role="service", subject="x", ttl_s=-60)
    assert service_token_problem(service) is None
    assert "'agent' token" in str(service_token_problem(agent))
    assert "expired" in str(service_token_problem(expired))
    assert "no JWT" in str(service_token_problem("not a token"))
