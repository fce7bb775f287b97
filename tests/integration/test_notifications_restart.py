"""The notifications service as a real process, killed (SIGKILL) in the middle of a batch and
started again: every notification is delivered exactly once.

"Delivered" is checked where it lands: one outbox record per (appeal, event) for the platform
channels (whose recording sink is that record), and one message per delivery at the real SMTP
server, by Message-ID. A kill between the SMTP server's "250" and our outbox record makes the
restarted process send that one email again, under the same Message-ID, which mail systems treat
as the same message; the test allows exactly that and nothing more.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from appeals import events, topics
from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_devstack.stack import (
    SERVICES,
    Infrastructure,
    ServiceProcess,
    service_environment,
    start_service,
    wait_all_ready,
)
from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer
from services.intake.model import AppealRecord
from services.notifications import repository
from tests.support.intake_app import IntakeUnderTest, serving_grpc, start_intake
from tests.support.notifications import (
    appeal,
    claimed,
    decided,
    eventually,
    lifecycle_events,
    smtp_receiver,
    submitted_event,
)

pytestmark = pytest.mark.integration

NOTIFICATIONS = next(spec for spec in SERVICES if spec.name == "notifications")
# Partitions of the test session's topics (the stack's default).
PARTITIONS = 3
PLATFORMS = [
    appeal_pb2.PLATFORM_FACEBOOK,
    appeal_pb2.PLATFORM_INSTAGRAM,
    appeal_pb2.PLATFORM_WHATSAPP,
    appeal_pb2.PLATFORM_HORIZON,
]


def batch(
    run: str, appeals: int
) -> tuple[list[events_pb2.AppealEvent], dict[str, appeal_pb2.AppealSubmission]]:
    """Every appeal submitted, claimed and decided; every third one prefers email. Also what
    each appellant submitted, for intake to know."""
    published: list[events_pb2.AppealEvent] = []
    submissions: dict[str, appeal_pb2.AppealSubmission] = {}
    for i in range(appeals):
        appeal_id = f"ap_{run}_{i:02d}"
        contact = (
            appeal_pb2.Contact(email=f"person{i}@example.org", preferred_channel="email")
            if i % 3 == 0
            else None
        )
        submissions[appeal_id] = appeal(PLATFORMS[i % 4], locale="de-DE", contact=contact)
        published += [
            submitted_event(appeal_id, submissions[appeal_id]),
            claimed(appeal_id),
            decided(
                appeal_id, appeal_pb2.OUTCOME_OVERTURNED if i % 2 else appeal_pb2.OUTCOME_UPHELD
            ),
        ]
    return published, submissions


async def intake_knows(
    intake: IntakeUnderTest, appeal_id: str, submission: appeal_pb2.AppealSubmission
) -> None:
    """Record the appeal in intake's store as intake's submit does before publishing."""
    now = store.stored_time(datetime.now(UTC))
    record = AppealRecord(appeal_id, "tests", submission, "received", now, now)
    await intake.repository.insert_appeal(record)


@pytest.fixture
async def serving_intake(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> AsyncIterator[tuple[IntakeUnderTest, str]]:
    """The real intake (its gRPC servicer and store) answers the service's particulars reads;
    it trusts the dev key the service's token is signed with."""
    under_test = await start_intake(db, producer, tmp_path)
    async with serving_grpc(under_test) as target:
        yield under_test, target
    await under_test.client.aclose()


@pytest.fixture
async def notifications_db(db: store.Database) -> AsyncIterator[store.Database]:
    """The database a notifications process told ``MONGODB_DATABASE=db.name`` owns; dropped
    afterwards like ``db``."""
    name = store.service_database(db.name, "notifications")
    yield db.client[name]
    await db.client.drop_database(name)


async def test_a_service_killed_mid_batch_delivers_every_notification_exactly_once(
    infra: Infrastructure,
    producer: EventProducer,
    db: store.Database,
    notifications_db: store.Database,
    tmp_path: Path,
    serving_intake: tuple[IntakeUnderTest, str],
) -> None:
    run = uuid.uuid4().hex[:8]
    published, submissions = batch(run, appeals=24)
    ours = {event.appeal_id for event in published}
    outbox = notifications_db[repository.OUTBOX]
    intake, intake_target = serving_intake
    for appeal_id, submission in submissions.items():
        await intake_knows(intake, appeal_id, submission)

    async def recorded() -> int:
        return await outbox.count_documents({"appeal_id": {"$in": sorted(ours)}})

    with smtp_receiver() as smtp:
        env = service_environment(infra, base=os.environ)
        env.update(devkeys.service_environment(tmp_path))
        env.update(
            {
                "INTAKE_GRPC_TARGET": intake_target,
                "MONGODB_DATABASE": db.name,
                NOTIFICATIONS.port_variable: str(free_port()),
                "NOTIFICATIONS_CONSUMER_GROUP": f"notifications-restart-{run}",
                "NOTIFICATIONS_RETRY_CONSUMER_GROUP": f"notifications-restart-retries-{run}",
                # A fresh store: start at the end of the shared topic, not its whole history.
                "NOTIFICATIONS_START_FROM": "latest",
                "NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
                "NOTIFICATIONS_SMTP_PORT": str(smtp.port),
                "NOTIFICATIONS_SMTP_SECURITY": "none",
                "NOTIFICATIONS_EMAIL_FROM": "appeals@example.org",
                "NOTIFICATIONS_QUIET_HOURS": "",
                "NOTIFICATIONS_DAILY_LIMIT": "1000",
                "NOTIFICATIONS_RETRY_TICK_S": "0.1",
                "LOG_LEVEL": "INFO",
            }
        )

        def start(name: str) -> ServiceProcess:
            service = start_service(NOTIFICATIONS, env, log_path=tmp_path / f"{name}.log")
            wait_all_ready([service], timeout=60)
            return service

        first = start("first")
        try:
            # The group joins at the end of the topic: probes, one per partition, tell when it
            # reads, and give each partition a committed position to restart from.
            probes: dict[str, int] = {}

            async def every_partition_probed() -> bool:
                probe = f"ap_{run}_probe_{uuid.uuid4().hex[:6]}"
                await intake_knows(intake, probe, appeal())
                probes[probe] = (
                    await producer.publish(
                        topics.APPEAL_LIFECYCLE, submitted_event(probe, appeal())
                    )
                ).partition
                delivered = await outbox.find({"appeal_id": {"$in": [*probes]}}).to_list()
                return len({probes[d["appeal_id"]] for d in delivered}) == PARTITIONS

            await eventually(every_partition_probed, "probes delivered", timeout_s=30, every_s=0.3)

            for event in published:
                await producer.publish(topics.APPEAL_LIFECYCLE, event)

            async def some_recorded() -> bool:
                return await recorded() >= 6

            await eventually(some_recorded, "the first deliveries of the batch", every_s=0.01)
        finally:
            os.killpg(first.process.pid, signal.SIGKILL)
            first.process.wait()
        at_kill = await recorded()
        # Deliveries recorded before the kill: these must never be sent again.
        recorded_at_kill = {
            f"<{r['delivery_id']}@example.org>"
            for r in await outbox.find({"appeal_id": {"$in": sorted(ours)}}).to_list()
        }
        assert first.process.returncode == -signal.SIGKILL
        assert at_kill < len(published), "the kill came after the batch: nothing was tested"

        second = start("second")
        try:

            async def all_recorded() -> bool:
                return await recorded() == len(published)

            try:
                await eventually(all_recorded, "every notification after the restart", timeout_s=60)
            except AssertionError as error:
                logs = "\n".join(
                    (tmp_path / f"{name}.log").read_text()[-3000:] for name in ("first", "second")
                )
                raise AssertionError(
                    f"{error}: {await recorded()} of {len(published)}\n{logs}"
                ) from error
            async with httpx.AsyncClient() as client:
                exposition = (await client.get(f"{second.base_url}/metrics")).text
        finally:
            second.stop()

    # Exactly one outbox record per (appeal, event): received, in review and decided.
    records = await outbox.find({"appeal_id": {"$in": sorted(ours)}}).to_list()
    keys = Counter((r["appeal_id"], r["about_event_id"]) for r in records)
    assert set(keys) == {(e.appeal_id, e.event_id) for e in published}
    assert set(keys.values()) == {1}
    assert Counter(r["kind"] for r in records) == {"received": 24, "in_review": 24, "decided": 24}

    # Every email delivery reached the SMTP server. Only sends in flight at the kill (handled
    # side by side, several at once) may have gone out twice, with the same Message-ID for the
    # receiving side to fold; nothing recorded before the kill was sent again.
    emailed = {f"<{r['delivery_id']}@example.org>" for r in records if r["channel"] == "email"}
    assert len(emailed) == 8 * 3
    arrived = Counter(m["Message-ID"] for m in smtp.messages if m["Message-ID"] in emailed)
    assert set(arrived) == emailed
    twice = {message_id for message_id, count in arrived.items() if count > 1}
    assert not twice & recorded_at_kill, "a delivery recorded before the kill was sent again"
    assert all(count <= 2 for count in arrived.values())

    # One notified event id per notification (republishing after the restart reuses the id).
    expected = {events.derived_event_id(e.appeal_id, "notified", e.event_id) for e in published}
    notified = await lifecycle_events(
        infra.kafka_bootstrap_servers,
        ours,
        until=lambda found: expected <= {e.event_id for e in found},
        timeout_s=30,
    )
    assert {e.event_id for e in notified if e.HasField("notified")} == expected
    assert "appeals_notifications_delivered_total{" in exposition
