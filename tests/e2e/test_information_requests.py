"""Black-box: a reviewer asks the appellant for more, the person answers through intake, and the
reviewer who claims the case next reads the answer and decides; across separate processes.
An unanswered request, in a pipeline whose policy gives the person three seconds, returns the case
to its queue and it is decided on what the file holds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml

from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2
from services.routing.policy_file import DEFAULT_POLICY_FILE
from tests.conftest import private_stack
from tests.e2e.conftest import Pipeline, running_pipeline
from tests.support.bodies import appeal_body
from tests.support.pipeline import register_senior_for_everything, review, submit_rest
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

QUESTION = "Please send a screenshot of the news article you quoted."
ANSWER = "Here it is: the article from the Tagesschau, 2 December."
SCREENSHOT = {"media_type": "image/png", "uri": "https://cdn.example/shot.png", "size_bytes": 48213}


async def claimed_when_offered(
    desk: agent_desk_pb2_grpc.AgentDeskStub, metadata: Any, appeal_id: str
) -> agent_desk_pb2.ClaimResponse:
    stream = desk.StreamCases(agent_desk_pb2.StreamCasesRequest(), metadata=metadata)
    try:
        async with asyncio.timeout(60):
            async for offer in stream:
                if offer.appeal_id == appeal_id:
                    claim: agent_desk_pb2.ClaimResponse = await desk.Claim(
                        agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=metadata
                    )
                    return claim
    finally:
        stream.cancel()
    raise AssertionError(f"{appeal_id} was never offered")


async def test_a_request_for_information_is_answered_through_intake_and_read_by_the_reviewer(
    pipeline: Pipeline,
) -> None:
    ops = {"Authorization": f"Bearer {pipeline.ops_token()}"}
    body = appeal_body("instagram", locale="de-DE")
    surface = {"Authorization": f"Bearer {pipeline.surface_token('instagram')}"}
    metadata = (("authorization", f"Bearer {pipeline.agent_token('asker-e2e')}"),)
    # Whoever claims the case next reads the answer: another reviewer here (the desk offers a
    # case its last reviewer let go to others first, for a while).
    reader = (("authorization", f"Bearer {pipeline.agent_token('reader-e2e')}"),)
    async with (
        httpx.AsyncClient(timeout=20) as client,
        grpc.aio.insecure_channel(pipeline.desk_grpc) as channel,
    ):
        submitted = await submit_rest(client, pipeline, body, uuid.uuid4().hex)
        assert submitted.status_code == 202, submitted.text
        appeal_id = submitted.json()["appeal_id"]
        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
        for reviewer in (metadata, reader):
            await register_senior_for_everything(desk, reviewer)
        first = await claimed_when_offered(desk, metadata, appeal_id)
        assert not first.case.information
        asked = await desk.RequestInformation(
            agent_desk_pb2.RequestInformationRequest(appeal_id=appeal_id, question=QUESTION),
            metadata=metadata,
        )
        assert asked.HasField("respond_by")

        async def status() -> dict[str, Any]:
            response = await client.get(
                f"{pipeline.url('intake')}/v1/appeals/{appeal_id}", headers=ops
            )
            return dict(response.json())

        async def awaiting() -> dict[str, Any] | None:
            view = await status()
            return view if view["status"] == "awaiting_information" else None

        view = await eventually(awaiting, "the appeal waiting for information")
        assert view["information_request"]["question"] == QUESTION
        assert view["information_request"]["respond_by"]

        async def told() -> list[dict[str, Any]] | None:
            response = await client.get(
                f"{pipeline.url('notifications')}/v1/appeals/{appeal_id}/notifications",
                headers=ops,
            )
            items = response.json().get("notifications", []) if response.is_success else []
            return [n for n in items if n["kind"] == "info_requested"] or None

        (notice,) = await eventually(told, "the request for information told to the person")
        assert notice["locale"].startswith("de")

        url = f"{pipeline.url('intake')}/v1/appeals/{appeal_id}/information"
        invalid = await client.post(url, json={"answer": "  "}, headers=surface)
        assert invalid.status_code == 400, invalid.text
        answered = await client.post(
            url, json={"answer": ANSWER, "attachments": [SCREENSHOT]}, headers=surface
        )
        assert answered.status_code == 202, answered.text

        async def back_in_queue() -> dict[str, Any] | None:
            view = await status()
            return view if view["status"] == "routed" else None

        view = await eventually(back_in_queue, "the case back in its queue")
        assert view["information_request"] is None
        again = await client.post(url, json={"answer": ANSWER}, headers=surface)
        assert again.status_code == 409 and again.json()["code"] == "not_awaiting_information"

        second = await claimed_when_offered(desk, reader, appeal_id)
        (exchange,) = second.case.information
        assert (exchange.question, exchange.answer) == (QUESTION, ANSWER)
        assert [a.uri for a in exchange.attachments] == [SCREENSHOT["uri"]]
        await desk.Decide(
            agent_desk_pb2.DecideRequest(
                appeal_id=appeal_id, outcome=appeal_pb2.OUTCOME_OVERTURNED,
                rationale="The screenshot shows a news report quoting the slur.",
                policy_cited="hate_speech", facts="A news report quoting a slur, with its source.",
            ),
            metadata=reader,
        )  # fmt: skip

        async def trail() -> list[str] | None:
            response = await client.get(
                f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail", headers=ops
            )
            if response.status_code != 200:
                return None
            types = [entry["type"] for entry in response.json()["entries"]]
            return types if "decided" in types else None

        types = await eventually(trail, "the trail with the decision")
        assert (
            types.index("info_requested") < types.index("info_provided") < types.index("decided")
        ), types
        # The answer is the appellant's: the log records that one came, never what it says.
        entries = await client.get(
            f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail", headers=ops
        )
        assert ANSWER not in entries.text and "shot.png" not in entries.text


@pytest.fixture
def three_seconds_to_answer(tmp_path: Path) -> Iterator[Pipeline]:
    """A pipeline whose policy gives the person three seconds to answer, on a broker of its own
    (the session's services would share its consumer groups)."""
    policy = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    policy["info_requests"] = {"respond_within": "3s", "on_no_answer": "return_to_queue"}
    policy_file = tmp_path / "routing_policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    overrides = {"ROUTING_POLICY_FILE": str(policy_file)}
    with (
        private_stack(tmp_path / "stack") as infra,
        running_pipeline(infra, tmp_path / "pipeline", overrides) as pipeline,
    ):
        yield pipeline


async def test_an_unanswered_request_returns_the_case_to_its_queue_and_it_is_decided(
    three_seconds_to_answer: Pipeline,
) -> None:
    """The policy's window passes without an answer: the case goes back to its queue with its
    SLA clock running again, and a reviewer decides on what the file holds."""
    pipeline = three_seconds_to_answer
    ops = {"Authorization": f"Bearer {pipeline.ops_token()}"}
    metadata = (("authorization", f"Bearer {pipeline.agent_token('asker-lapse')}"),)
    async with (
        httpx.AsyncClient(timeout=20) as client,
        grpc.aio.insecure_channel(pipeline.desk_grpc) as channel,
    ):
        body = appeal_body("facebook", locale="en-GB")
        submitted = await submit_rest(client, pipeline, body, uuid.uuid4().hex)
        assert submitted.status_code == 202, submitted.text
        appeal_id = submitted.json()["appeal_id"]
        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
        await desk.RegisterAgent(
            agent_desk_pb2.RegisterAgentRequest(
                profile=agent_desk_pb2.AgentProfile(
                    languages=["*"], platforms=["*"], policy_areas=["*"],
                    seniority="senior", capacity=5,
                )
            ),
            metadata=metadata,
        )  # fmt: skip
        await claimed_when_offered(desk, metadata, appeal_id)
        await desk.RequestInformation(
            agent_desk_pb2.RequestInformationRequest(appeal_id=appeal_id, question=QUESTION),
            metadata=metadata,
        )

        async def logged() -> list[str]:
            response = await client.get(
                f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail", headers=ops
            )
            entries = response.json()["entries"] if response.is_success else []
            return [entry["type"] for entry in entries]

        async def released() -> list[str] | None:
            types = await logged()
            return types if "info_requested" in types and "released" in types[-2:] else None

        await eventually(released, "the case back in its queue once the window passed")
        view = await client.get(f"{pipeline.url('intake')}/v1/appeals/{appeal_id}", headers=ops)
        assert view.json()["status"] == "routed" and view.json()["information_request"] is None
        late = await client.post(
            f"{pipeline.url('intake')}/v1/appeals/{appeal_id}/information",
            json={"answer": ANSWER},
            headers={"Authorization": f"Bearer {pipeline.surface_token('facebook')}"},
        )
        assert late.status_code == 409 and late.json()["code"] == "not_awaiting_information"
        await review(pipeline, {appeal_id: appeal_pb2.OUTCOME_UPHELD}, agent="decider-lapse")

        async def decided() -> list[str] | None:
            types = await logged()
            told = "decided" in types and "notified" in types[types.index("decided") :]
            return types if told else None

        types = await eventually(decided, "the decision on what the file holds, told")
        assert "info_provided" not in types
