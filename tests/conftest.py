"""The test session's own Kafka broker and FerretDB, on free ports, stopped however tests end.

Only tests that ask for ``infra`` (integration and end-to-end) start them; unit tests need no I/O.
They never collide with a `make run` on the same machine.
"""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import FrameType

import pytest

from appeals_devstack.processes import free_port
from appeals_devstack.stack import Infrastructure, OpsOptions
from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer


@contextlib.contextmanager
def private_stack(state_dir: Path, ops: OpsOptions | None = None) -> Iterator[Infrastructure]:
    """Kafka and FerretDB (and ``ops``, if given) on free ports under ``state_dir``, stopped
    however the block ends."""
    started = Infrastructure.start(
        state_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        mongodb_port=free_port(),
        ops=ops,
    )
    try:
        yield started
    finally:
        started.stop()


def pytest_configure(config: pytest.Config) -> None:
    # A CI timeout stops the run with SIGTERM, which would end Python without running fixture
    # teardown and leave brokers, stores and services running. Treated as Ctrl-C instead, pytest
    # stops the session and its fixtures stop what they started.
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.asynccontextmanager
async def running_producer(infra: Infrastructure, client_id: str) -> AsyncIterator[EventProducer]:
    publisher = EventProducer(
        infra.kafka_bootstrap_servers, client_id=client_id, publish_timeout_s=15
    )
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.stop()


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    with private_stack(tmp_path_factory.mktemp("stack")) as started:
        yield started


@pytest.fixture(scope="session")
async def producer(infra: Infrastructure) -> AsyncIterator[EventProducer]:
    async with running_producer(infra, "tests") as publisher:
        yield publisher


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
