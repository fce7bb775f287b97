"""Inserts that overlap in time go to the real store together, each caller told its own fate."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import AsyncMongoClient, monitoring

from appeals_devstack.stack import Infrastructure
from appeals_runtime import store

pytestmark = pytest.mark.integration


class Inserts(monitoring.CommandListener):
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            self.sizes.append(len(event.command.get("documents", ())))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_overlapping_inserts_share_commands_and_duplicates_are_told_apart(
    infra: Infrastructure, db: store.Database
) -> None:
    inserts = Inserts()
    client: AsyncMongoClient[store.Document] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[inserts]
    )
    things = client[db.name]["things"]
    try:
        assert await store.insert_once(things, {"_id": "taken"})
        assert inserts.sizes == [1]  # alone: out at once
        wanted = [{"_id": f"t{i}"} for i in range(30)] + [{"_id": "taken"}, {"_id": "t3"}]
        results = await asyncio.gather(*(store.insert_once(things, dict(d)) for d in wanted))
        assert results == [True] * 30 + [False, False]
        assert sum(inserts.sizes) == 1 + len(wanted)
        assert len(inserts.sizes) < 1 + len(wanted)  # shared commands
        assert await things.count_documents({}) == 31
    finally:
        await client.close()
