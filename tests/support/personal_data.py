"""Searching the running pipeline for an appellant's personal data: appeals whose personal data is
unique to one run (so any trace of it is a leak), the bytes to search for, and where to search:
the audit trails and every record of every topic."""

from __future__ import annotations

from typing import Any

import httpx

from appeals import topics
from tests.e2e.conftest import Pipeline
from tests.support.bodies import appeal_body
from tests.support.kafka import read_to_end
from tests.support.waiting import eventually


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
