"""The test session's own Kafka broker and FerretDB, on free ports, stopped however tests end.

Only tests that ask for ``infra`` (integration and end-to-end) start them; unit tests need no I/O.
They never collide with a `make run` on the same machine.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from appeals_devstack.processes import free_port
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    state_dir: Path = tmp_path_factory.mktemp("stack")
    started = Infrastructure.start(
        state_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        mongodb_port=free_port(),
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
async def producer(infra: Infrastructure) -> AsyncIterator[EventProducer]:
    publisher = EventProducer(
        infra.kafka_bootstrap_servers, client_id="tests", publish_timeout_s=15
    )
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.stop()


@pytest.fixture
async def db(infra: Infrastructure) -> AsyncIterator[store.Database]:
    """A fresh database per test, dropped afterwards."""
    client = store.create_client(infra.mongodb_url, app_name="tests")
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()
