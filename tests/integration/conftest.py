"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer
from tests.integration.intake_app import IntakeUnderTest, start_intake


@pytest.fixture
async def intake(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> AsyncIterator[IntakeUnderTest]:
    """Intake's real app in-process on the session's broker and a fresh database."""
    under_test = await start_intake(db, producer, tmp_path)
    yield under_test
    await under_test.client.aclose()
