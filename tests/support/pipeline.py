"""Driving the running pipeline (the e2e tests' ``pipeline``) as its users do: a surface submits an
appeal over REST, gRPC or a Kafka request; a reviewer works the agent desk."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import grpc
import httpx

from appeals import topics
from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2, intake_pb2, intake_pb2_grpc
from tests.e2e.conftest import Pipeline
from tests.support.bodies import STATEMENT, submission_proto
from tests.support.kafka import read_to_end
from tests.support.waiting import eventually

# The channel each platform's appellants are told on.
CHANNELS = {
    "facebook": "facebook_in_app",
    "instagram": "instagram_dm",
    "whatsapp": "whatsapp_template",
    "horizon": "horizon_headset",
}


async def submit_rest(
    client: httpx.AsyncClient, pipeline: Pipeline, body: dict[str, Any], key: str
) -> httpx.Response:
    return await client.post(
        f"{pipeline.url('intake')}/v1/appeals",
        json=body,
        headers={
            "Authorization": f"Bearer {pipeline.surface_token(body['platform'])}",
            "Idempotency-Key": key,
        },
    )


async def submit_grpc(pipeline: Pipeline, body: dict[str, Any]) -> str:
    async with grpc.aio.insecure_channel(pipeline.intake_grpc) as channel:
        response = await intake_pb2_grpc.IntakeStub(channel).SubmitAppeal(
            intake_pb2.SubmitAppealRequest(
                idempotency_key=uuid.uuid4().hex, submission=submission_proto(body)
            ),
            metadata=(("authorization", f"Bearer {pipeline.surface_token(body['platform'])}"),),
        )
    assert response.status == appeal_pb2.APPEAL_STATUS_RECEIVED
    return str(response.appeal_id)


async def submit_kafka(pipeline: Pipeline, body: dict[str, Any], producer: Any) -> str:
    request_id = f"req-{uuid.uuid4().hex}"
    request = intake_pb2.AppealRequest(
        request_id=request_id,
        token=pipeline.surface_token(body["platform"]),
        submission=submission_proto(body),
    )
    await producer.publish(topics.APPEAL_REQUESTS, request)

    async def outcome() -> str | None:
        records = await read_to_end(
            pipeline.infra.kafka_bootstrap_servers, topics.APPEAL_REQUEST_OUTCOMES.name
        )
        for record in records:
            answer = topics.APPEAL_REQUEST_OUTCOMES.decode(record.value)
            if answer.request_id == request_id:
                assert answer.WhichOneof("result") == "accepted", answer
                return str(answer.accepted.appeal_id)
        return None

    return await eventually(outcome, "the request outcome")


# Steps of a review plan that escalate the case instead of deciding it: to a senior reviewer, or
# out to the Oversight Board or the certified out-of-court body "user_rights".
SENIOR = "senior"
BOARD = "board"
OUT_OF_COURT = "ods:user_rights"
_ESCALATIONS = {
    SENIOR: (agent_desk_pb2.ESCALATION_TARGET_SENIOR, ""),
    BOARD: (agent_desk_pb2.ESCALATION_TARGET_OVERSIGHT_BOARD, ""),
    OUT_OF_COURT: (agent_desk_pb2.ESCALATION_TARGET_OUT_OF_COURT, "user_rights"),
}


async def register_senior_for_everything(
    desk: agent_desk_pb2_grpc.AgentDeskStub, metadata: Any
) -> None:
    """Register the agent of ``metadata`` as a senior reviewer of every language, platform and
    policy area, with room for 50 offers: the shipped policy offers nothing to an agent that
    has not registered its skills, and other tests' offers it passes over count against its
    capacity while they last."""
    await desk.RegisterAgent(
        agent_desk_pb2.RegisterAgentRequest(
            profile=agent_desk_pb2.AgentProfile(
                languages=["*"], platforms=["*"], policy_areas=["*"], seniority="senior",
                capacity=50,
            )
        ),
        metadata=metadata,
    )  # fmt: skip


async def review(
    pipeline: Pipeline,
    plan: Mapping[str, int | str],
    *,
    agent: str = "reviewer-e2e",
    statements: Mapping[str, str] | None = None,
) -> dict[str, agent_desk_pb2.CaseOffer]:
    """A reviewer works the desk until every appeal in ``plan`` is decided with the outcome given
    (or escalated: ``SENIOR``, ``BOARD``, ``OUT_OF_COURT``); returns each case as its claim showed
    it. An offer never shows
    the statement; the claim shows the appellant's own (``statements``, else ``STATEMENT``),
    read from intake for the reviewer holding the case."""
    metadata = (("authorization", f"Bearer {pipeline.agent_token(agent)}"),)
    pending = dict(plan)
    claimed: dict[str, agent_desk_pb2.CaseOffer] = {}
    async with grpc.aio.insecure_channel(pipeline.desk_grpc) as channel:
        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
        await register_senior_for_everything(desk, metadata)
        stream = desk.StreamCases(agent_desk_pb2.StreamCasesRequest(), metadata=metadata)

        async def work() -> None:
            async for offer in stream:
                appeal_id = offer.appeal_id
                if appeal_id not in pending:
                    continue
                assert offer.statement == "" and not offer.attachments
                claim = await desk.Claim(
                    agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=metadata
                )
                claimed[appeal_id] = claim.case
                assert claim.case.statement == (statements or {}).get(appeal_id, STATEMENT)
                step = pending.pop(appeal_id)
                if isinstance(step, str):
                    target, body = _ESCALATIONS[step]
                    await desk.Escalate(
                        agent_desk_pb2.EscalateRequest(
                            appeal_id=appeal_id,
                            target=target,
                            reason="A borderline quotation.",
                            question="Does quoting a slur to report on it violate the policy?",
                            body=body,
                        ),
                        metadata=metadata,
                    )
                else:
                    await desk.Decide(
                        agent_desk_pb2.DecideRequest(
                            appeal_id=appeal_id,
                            outcome=step,  # type: ignore[arg-type]
                            rationale="Reviewed by a person against the policy cited.",
                            policy_cited="hate_speech",
                            facts="The content was read in full against the policy cited.",
                        ),
                        metadata=metadata,
                    )
                if not pending:
                    stream.cancel()
                    return

        await asyncio.wait_for(work(), 60)
    assert not pending, f"never offered: {sorted(pending)}"
    return claimed
