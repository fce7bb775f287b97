"""The broker dies mid-load: every appeal that got a 2xx is in Kafka afterwards, the others got
503 with Retry-After in time, readiness says so, and intake recovers when the broker returns.

Uses a broker of its own, so stopping it does not disturb the rest of the session."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals import topics
from appeals_devstack.kafka import KafkaBroker, create_topics
from appeals_devstack.processes import free_port
from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer
from tests.support.bodies import fresh_body
from tests.support.intake_app import IntakeUnderTest, start_intake
from tests.support.kafka import read_all

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


@contextlib.asynccontextmanager
async def intake_on(
    broker: KafkaBroker,
    db: store.Database,
    key_dir: Path,
    *,
    client_id: str,
    policy_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[EventProducer, IntakeUnderTest]]:
    """Intake publishing to ``broker`` with a short publish timeout, closed however the test
    ends."""
    producer = EventProducer(
        broker.bootstrap_servers, client_id=client_id, publish_timeout_s=PUBLISH_TIMEOUT_S
    )
    await producer.start()
    try:
        intake = await start_intake(db, producer, key_dir, policy_overrides=policy_overrides)
        try:
            yield producer, intake
        finally:
            await intake.client.aclose()
    finally:
        await producer.stop()


async def restart(broker: KafkaBroker, producer: EventProducer) -> None:
    """Start the stopped broker again (same data and ports) and wait until intake's producer
    reaches it."""
    await asyncio.to_thread(broker.start)
    await asyncio.to_thread(broker.wait_ready)
    await producer.check_ready()


# A window far longer than a test: nothing may rely on it running out.
NO_IN_FLIGHT_TIMEOUT = {"in_flight": timedelta(hours=1)}


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


async def test_a_submit_answered_503_leaves_nothing_that_blocks_the_next_one(
    own_broker: KafkaBroker, db: store.Database, tmp_path: Path
) -> None:
    """The broker is stopped (the real process) mid-use: the submit is answered 503. Once it is
    back, a new request about the same item is accepted at once (the slot was given back), and
    a retry of the failed request with its key continues at once instead of waiting out the
    in-flight window, then meets the open appeal like any other request about that item."""
    body, failed_key = fresh_body(), uuid.uuid4().hex
    async with intake_on(own_broker, db, tmp_path, client_id="slot-leak",
                         policy_overrides=NO_IN_FLIGHT_TIMEOUT) as (producer, intake):  # fmt: skip
        assert (await intake.submit(fresh_body())).status_code == 202
        await asyncio.to_thread(own_broker.stop)
        failed = await intake.submit(body, key=failed_key)
        assert failed.status_code == 503, failed.text

        await restart(own_broker, producer)
        retried = await intake.submit(body, key=failed_key)
        assert retried.status_code == 202, retried.text  # not 409 request_in_flight
        failed_id = retried.json()["appeal_id"]
        again = await intake.submit(body, key=failed_key)
        assert again.json() == retried.json()  # a replay, not a second appeal

        # The same item under a new key: refused in the name of an appeal that can be read.
        other = await intake.submit(body)
        assert other.status_code == 409, other.text
        assert other.json()["open_appeal_id"] == failed_id
        shown = await intake.client.get(f"/v1/appeals/{failed_id}", headers=intake.headers())
        assert shown.status_code == 200, shown.text


async def test_a_new_request_about_the_item_is_accepted_after_a_503(
    own_broker: KafkaBroker, db: store.Database, tmp_path: Path
) -> None:
    body = fresh_body()
    async with intake_on(own_broker, db, tmp_path, client_id="slot-free",
                         policy_overrides=NO_IN_FLIGHT_TIMEOUT) as (producer, intake):  # fmt: skip
        await asyncio.to_thread(own_broker.stop)
        assert (await intake.submit(body)).status_code == 503
        await restart(own_broker, producer)
        accepted = await intake.submit(body)  # another key: the person tried again later
        assert accepted.status_code == 202, accepted.text
        appeal_id = accepted.json()["appeal_id"]
        shown = await intake.client.get(f"/v1/appeals/{appeal_id}", headers=intake.headers())
        assert shown.status_code == 200, shown.text
