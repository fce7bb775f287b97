"""Black-box: the broker stops mid-traffic and comes back, with every service a process of its
own on a stack of this test's (stopping the session's broker would disturb the other tests).

Every submit that got a 202 is decided and its appellant told; every submit refused with 503
left nothing behind, so the same request with a new key is accepted once the broker is back."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals.v1 import appeal_pb2
from appeals_devstack.stack import Infrastructure
from tests.conftest import private_stack
from tests.e2e.conftest import Pipeline, running_pipeline
from tests.support.bodies import appeal_body
from tests.support.pipeline import review, submit_rest
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

PLATFORMS = ("facebook", "instagram", "whatsapp", "horizon")


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[tuple[Infrastructure, Pipeline]]:
    with (
        private_stack(tmp_path / "stack") as infra,
        # A short publish timeout: a submit during the outage is answered 503 in seconds.
        running_pipeline(infra, tmp_path / "pipeline", {"KAFKA_PUBLISH_TIMEOUT_S": "3"}) as pipe,
    ):
        yield infra, pipe


async def test_every_2xx_is_decided_and_told_and_every_503_can_be_retried(
    own_stack: tuple[Infrastructure, Pipeline],
) -> None:
    infra, pipe = own_stack
    assert infra.broker is not None
    bodies = [appeal_body(PLATFORMS[i % 4]) for i in range(12)]
    accepted: dict[int, str] = {}
    refused: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:

        async def submit(index: int) -> httpx.Response:
            return await submit_rest(client, pipe, bodies[index], uuid.uuid4().hex)

        for index in range(4):
            response = await submit(index)
            assert response.status_code == 202, response.text
            accepted[index] = response.json()["appeal_id"]

        await asyncio.to_thread(infra.broker.stop)
        during = await asyncio.gather(*(submit(index) for index in range(4, 8)))
        for index, response in zip(range(4, 8), during, strict=True):
            if response.status_code == 202:  # acknowledged before the broker went
                accepted[index] = response.json()["appeal_id"]
                continue
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert int(response.headers["retry-after"]) > 0
            refused.append(index)
        assert refused, "the broker's stop refused no submit"

        await asyncio.to_thread(infra.broker.start)
        await asyncio.to_thread(infra.broker.wait_ready)

        async def retried(index: int) -> httpx.Response | None:
            response = await submit(index)  # the same request, a new key
            return response if response.status_code == 202 else None

        for index in [*refused, *range(8, 12)]:
            response = await eventually(functools.partial(retried, index), f"appeal {index} taken")
            accepted[index] = response.json()["appeal_id"]
        assert len(accepted) == 12

        outcomes = {
            appeal_id: appeal_pb2.OUTCOME_OVERTURNED if i % 2 else appeal_pb2.OUTCOME_UPHELD
            for i, appeal_id in accepted.items()
        }
        await review(pipe, outcomes, agent="outage-reviewer")

        ops = {"Authorization": f"Bearer {pipe.ops_token()}"}
        for appeal_id in accepted.values():

            async def decided(appeal_id: str = appeal_id) -> dict[str, Any] | None:
                response = await client.get(
                    f"{pipe.url('intake')}/v1/appeals/{appeal_id}", headers=ops
                )
                view = dict(response.json())
                return view if view.get("status") == "decided" else None

            async def told(appeal_id: str = appeal_id) -> list[Any] | None:
                response = await client.get(
                    f"{pipe.url('notifications')}/v1/appeals/{appeal_id}/notifications",
                    headers=ops,
                )
                items = response.json().get("notifications", []) if response.is_success else []
                return [n for n in items if n["kind"] == "decided"] or None

            await eventually(decided, f"{appeal_id} decided")
            assert len(await eventually(told, f"{appeal_id} told")) == 1
