"""Black-box: a referral to the Oversight Board and one to a certified out-of-court body each come
back through routing's Referrals API with the body's binding overturn, across separate processes:
the content is restored, the person is told in their locale, the trail records it, the log
verifies, and the item can be appealed again."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from appeals import topics, vocabulary
from appeals.v1 import appeal_pb2
from appeals_devstack import devkeys
from tests.e2e.conftest import Pipeline
from tests.support.bodies import appeal_body
from tests.support.kafka import read_all
from tests.support.pipeline import BOARD, OUT_OF_COURT, review, submit_rest
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

BODIES = {BOARD: "oversight_board", OUT_OF_COURT: "ods:user_rights"}


def body_headers(pipeline: Pipeline, body: str) -> dict[str, str]:
    token = devkeys.mint_token(pipeline.signing_key, role="referral_body", subject=body)
    return {"Authorization": f"Bearer {token}"}


async def test_board_and_out_of_court_referrals_come_back_restore_and_free_the_slot(
    pipeline: Pipeline,
) -> None:
    ops = {"Authorization": f"Bearer {pipeline.ops_token()}"}
    bodies: dict[str, dict[str, Any]] = {
        BOARD: appeal_body("facebook", locale="de-DE"),
        OUT_OF_COURT: appeal_body("whatsapp", locale="pt-BR", kind="account"),
    }
    async with httpx.AsyncClient(timeout=20) as client:
        appeal_of: dict[str, str] = {}
        for step, body in bodies.items():
            response = await submit_rest(client, pipeline, body, uuid.uuid4().hex)
            assert response.status_code == 202, response.text
            appeal_of[step] = response.json()["appeal_id"]
        await review(pipeline, {appeal_of[step]: step for step in bodies})

        for step, appeal_id in appeal_of.items():
            referred_to = BODIES[step]
            headers = body_headers(pipeline, referred_to)

            async def listed(appeal_id: str = appeal_id, headers: dict[str, str] = headers) -> Any:
                response = await client.get(
                    f"{pipeline.url('routing')}/v1/referrals", headers=headers
                )
                assert response.status_code == 200, response.text
                return [r for r in response.json() if r["appeal_id"] == appeal_id] or None

            (referral,) = await eventually(listed, f"the referral of {appeal_id} to {referred_to}")
            assert referral["body"] == referred_to and referral["overdue"] is False
            # Still open while the body decides: the item cannot be appealed twice.
            again = await submit_rest(client, pipeline, bodies[step], uuid.uuid4().hex)
            assert again.status_code == 409, again.text
            decided = await client.post(
                f"{pipeline.url('routing')}/v1/referrals/{appeal_id}/decision",
                json={
                    "outcome": "overturned",
                    "rationale": "Reporting on a slur is not hate speech.",
                    "policy_cited": "hate_speech",
                    "facts": "The post quotes the slur in a news report.",
                },
                headers=headers,
            )
            assert decided.status_code == 200, decided.text

        for step, appeal_id in appeal_of.items():

            async def closed(appeal_id: str = appeal_id) -> dict[str, Any] | None:
                response = await client.get(
                    f"{pipeline.url('intake')}/v1/appeals/{appeal_id}", headers=ops
                )
                view = dict(response.json())
                return view if view["status"] == "decided" else None

            view = await eventually(closed, f"{appeal_id} decided")
            assert view["outcome"] == "overturned"

            async def told(appeal_id: str = appeal_id) -> list[dict[str, Any]] | None:
                response = await client.get(
                    f"{pipeline.url('notifications')}/v1/appeals/{appeal_id}/notifications",
                    headers=ops,
                )
                items = response.json().get("notifications", []) if response.is_success else []
                return [n for n in items if n["kind"] == "decided"] or None

            (notice,) = await eventually(told, f"the decision notice of {appeal_id}")
            assert notice["locale"].split("-")[0] == bodies[step]["locale"].split("-")[0]

            async def trail(appeal_id: str = appeal_id) -> list[str] | None:
                response = await client.get(
                    f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail", headers=ops
                )
                if response.status_code != 200:
                    return None
                types = [entry["type"] for entry in response.json()["entries"]]
                return types if "decided" in types else None

            types = await eventually(trail, f"the trail of {appeal_id}")
            assert types.index("escalated") < types.index("decided"), types

            # The slot is free: the same item may be appealed again.
            again = await submit_rest(client, pipeline, bodies[step], uuid.uuid4().hex)
            assert again.status_code == 202, again.text

        for step, appeal_id in appeal_of.items():
            platform = vocabulary.PLATFORMS[bodies[step]["platform"]]
            topic = topics.restore_commands_topic(platform)
            commands = [
                topic.decode(record.value)
                for record in await read_all(
                    pipeline.infra.kafka_bootstrap_servers, topic.name, expect=10_000, timeout_s=2
                )
            ]
            assert [c.appeal_id for c in commands].count(appeal_id) == 1
            assert platform in (appeal_pb2.PLATFORM_FACEBOOK, appeal_pb2.PLATFORM_WHATSAPP)

        verify = await client.get(f"{pipeline.url('audit')}/v1/audit/verify", headers=ops)
        assert verify.status_code == 200 and verify.json()["ok"] is True, verify.json()
