"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appeals import topics
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer
from services.routing import main as routing_main
from tests.support.desk import Clock, EventTap, build_routing
from tests.support.intake_app import IntakeUnderTest, start_intake
from tests.support.live_help import LiveHelp, live_help


@pytest.fixture
async def intake(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> AsyncIterator[IntakeUnderTest]:
    """Intake's real app in-process on the session's broker and a fresh database."""
    under_test = await start_intake(db, producer, tmp_path)
    yield under_test
    await under_test.client.aclose()


# Live help with chats (the live-help tests; test_help_verification has its own, without chats):
# account-access chats submit their appeals to the in-process intake above.
@pytest.fixture
async def helpdesk(
    db: store.Database, tmp_path: Path, producer: EventProducer, intake: IntakeUnderTest
) -> AsyncIterator[LiveHelp]:
    async with live_help(db, tmp_path, producer=producer, intake=intake.client) as started:
        yield started


# For the routing tests (helpers in tests/support/desk.py): a clock the test moves, a routing
# instance on the test's database, and a tap on the lifecycle topic from where it ends now. A module
# that defines a fixture of the same name (test_routing_skills) uses its own.
@pytest.fixture(name="clock")
def clock_fixture() -> Clock:
    return Clock()


@pytest.fixture(name="routing")
async def routing_fixture(
    db: store.Database, producer: EventProducer, clock: Clock
) -> routing_main.RoutingParts:
    return await build_routing(db, producer, clock)


@pytest.fixture(name="lifecycle")
async def lifecycle_fixture(infra: Infrastructure) -> AsyncIterator[EventTap]:
    async with EventTap(infra.kafka_bootstrap_servers, topics.APPEAL_LIFECYCLE) as tap:
        yield tap
