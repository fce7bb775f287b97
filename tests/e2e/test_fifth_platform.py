"""A fifth platform, declared once, is carried end to end.

The platform registry (``libs/appeals/platforms.yaml``) is the one place a platform is
declared. Here every process of a pipeline reads a declaration file with a fifth platform that
the contracts do not name yet (its number travels in the open protobuf enum): intake accepts
appeals about it, routing routes them and sends an overturn's restore command to its own topic,
notifications tells the person on its own channel, and audit logs every step. Nothing else was
edited for it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals import platforms
from appeals.v1 import appeal_pb2, commands_pb2
from appeals_devstack.kafka import create_topics
from tests.conftest import private_stack
from tests.e2e.conftest import Pipeline, running_pipeline
from tests.support.bodies import appeal_body
from tests.support.kafka import read_all
from tests.support.pipeline import review, submit_rest
from tests.support.platforms import declaration_file
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _topic_names(platforms_file: Path) -> list[str]:
    """The topics a pipeline that reads ``platforms_file`` needs (as `make run` would create)."""
    probe = "from appeals.topics import all_topic_names as a; print(*a(), sep='\\n')"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, platforms.FILE_VARIABLE: str(platforms_file)},
        capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    return done.stdout.split()


@pytest.fixture
def five_platforms(tmp_path: Path) -> Iterator[Pipeline]:
    declared = declaration_file(tmp_path)
    names = _topic_names(declared)
    assert "appeals.restore-commands.threads.v1" in names
    with private_stack(tmp_path / "stack") as infra:
        asyncio.run(create_topics(infra.kafka_bootstrap_servers, names, partitions=3))
        overrides = {platforms.FILE_VARIABLE: str(declared)}
        with running_pipeline(infra, tmp_path / "pipeline", overrides) as pipeline:
            yield pipeline


async def test_an_appeal_on_a_fifth_platform_is_routed_decided_restored_told_and_audited(
    five_platforms: Pipeline,
) -> None:
    pipeline = five_platforms
    ops = {"Authorization": f"Bearer {pipeline.ops_token()}"}
    async with httpx.AsyncClient(timeout=20) as client:
        schema = (await client.get(f"{pipeline.url('intake')}/openapi.json")).json()
        assert (
            "threads"
            in schema["components"]["schemas"]["AppealIn"]["properties"]["platform"]["enum"]
        )
        submitted = await submit_rest(
            client, pipeline, appeal_body("threads", kind="account"), uuid.uuid4().hex
        )
        assert submitted.status_code == 202, submitted.text
        appeal_id = submitted.json()["appeal_id"]
        await review(pipeline, {appeal_id: appeal_pb2.OUTCOME_OVERTURNED})

        async def decided() -> dict[str, Any] | None:
            view = await client.get(
                f"{pipeline.url('intake')}/v1/appeals/{appeal_id}",
                headers={"Authorization": f"Bearer {pipeline.surface_token('threads')}"},
            )
            shown: dict[str, Any] = view.json()
            return shown if shown.get("status") == "decided" else None

        shown = await eventually(decided, "the appeal decided")
        assert (shown["platform"], shown["outcome"]) == ("threads", "overturned")

        async def told() -> list[dict[str, Any]] | None:
            response = await client.get(
                f"{pipeline.url('notifications')}/v1/appeals/{appeal_id}/notifications",
                headers=ops,
            )
            items = response.json().get("notifications", []) if response.is_success else []
            return items if any(n["kind"] == "decided" for n in items) else None

        notices = await eventually(told, "the person told of the decision")
        assert {n["channel"] for n in notices} == {"threads_inbox"}, notices

        async def trail() -> list[str] | None:
            response = await client.get(
                f"{pipeline.url('audit')}/v1/appeals/{appeal_id}/trail", headers=ops
            )
            types = [e["type"] for e in response.json()["entries"]] if response.is_success else []
            return types if "decided" in types and "notified" in types else None

        types = await eventually(trail, "the appeal's trail")
        assert {"submitted", "routed", "claimed", "decided", "notified"} <= set(types), types

    restore_topic = "appeals.restore-commands.threads.v1"
    records = await read_all(pipeline.infra.kafka_bootstrap_servers, restore_topic, expect=1)
    commands = [commands_pb2.RestoreCommand.FromString(r.value) for r in records]
    assert [(c.appeal_id, c.platform) for c in commands] == [(appeal_id, 5)]
