"""The broker dies mid-load: every appeal that got a 2xx is in Kafka afterwards, the others got
503 with Retry-After in time, readiness says so, and intake recovers when the broker returns.

Uses a broker of its own, so stopping it does not disturb the rest of the session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals_devstack.kafka import KafkaBroker, create_topics
from appeals_devstack.processes import free_port
from appeals_runtime import store, topics
from appeals_runtime.kafka.producer import EventProducer
from tests.integration.intake_app import start_intake
from tests.integration.kafka_helpers import read_all
from tests.integration.test_intake_rules import fresh_body

pytestmark = pytest.mark.integration

PUBLISH_TIMEOUT_S = 3.0


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(tmp_path / "kafka", free_port(), free_port())
    await asyncio.to_thread(broker.start)
    await asyncio.to_thread(broker.wait_ready)
    await create_topics(broker.bootstrap_servers, list(topics.all_topic_names()), partitions=1)
    try:
        yield broker
    finally:
        await asyncio.to_thread(broker.stop)


async def test_no_2xx_is_lost_when_the_broker_dies_and_intake_recovers(
    own_broker: KafkaBroker, db: store.Database, tmp_path: Path
) -> None:
    producer = EventProducer(own_broker.bootstrap_servers, client_id="durability",
                             publish_timeout_s=PUBLISH_TIMEOUT_S)  # fmt: skip
    await producer.start()
    intake = await start_intake(db, producer, tmp_path)
    answers: list[tuple[int, dict[str, Any], float, httpx.Headers]] = []

    async def submit() -> None:
        started = time.monotonic()
        response = await intake.submit(fresh_body())
        answers.append((response.status_code, response.json(), time.monotonic() - started,
                        response.headers))  # fmt: skip

    try:
        await asyncio.gather(*(submit() for _ in range(10)))
        # Load continues while the broker is killed.
        load = asyncio.gather(*(submit() for _ in range(10)))
        await asyncio.to_thread(own_broker.stop)
        await load
        down = [submit() for _ in range(6)]
        await asyncio.gather(*down)
        with pytest.raises(Exception):  # noqa: B017 - readiness fails however the client says so
            await producer.check_ready()

        await asyncio.to_thread(own_broker.start)  # same data directory and ports
        await asyncio.to_thread(own_broker.wait_ready)
        recovered = None
        for _ in range(60):
            response = await intake.submit(fresh_body())
            if response.status_code == 202:
                recovered = response.json()["appeal_id"]
                break
            await asyncio.sleep(0.5)
        assert recovered is not None, "intake did not recover after the broker returned"
        await producer.check_ready()
    finally:
        await intake.client.aclose()
        await producer.stop()

    codes = [code for code, *_ in answers]
    assert set(codes) <= {202, 503}, codes
    assert codes.count(503) >= 6  # at least every request made while the broker was down
    for code, _body, seconds, headers in answers:
        assert seconds < PUBLISH_TIMEOUT_S + 2.0  # answered within its timeout, never hanging
        if code == 503:
            assert headers["content-type"] == "application/problem+json"
            assert int(headers["retry-after"]) >= 1
    accepted = {body["appeal_id"] for code, body, *_ in answers if code == 202} | {recovered}
    in_kafka = {
        topics.APPEAL_LIFECYCLE.decode(record.value).appeal_id
        for record in await read_all(
            own_broker.bootstrap_servers,
            topics.APPEAL_LIFECYCLE.name,
            expect=len(accepted) + 30,
            timeout_s=10,
        )
    }
    assert accepted <= in_kafka, accepted - in_kafka
