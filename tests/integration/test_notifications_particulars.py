"""Notifications reaches the person through intake: the address is read when a message goes out
and kept nowhere in notifications, and an intake that is down delays a message, never loses it.

Real intake (REST submit, its gRPC servicer, its store), the real broker and store, a real SMTP
server, and the service's own pieces with the gRPC client it runs with in production.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import encode

from appeals.v1 import events_pb2, intake_pb2
from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.intake_client import (
    IntakeParticulars,
    ParticularsSource,
    ParticularsUnavailable,
    ServiceToken,
)
from appeals_runtime.kafka.producer import EventProducer
from services.notifications import repository
from services.notifications.consumer import lifecycle_handler
from services.notifications.main import build
from tests.support.bodies import fresh_body
from tests.support.intake_app import serving_grpc, start_intake
from tests.support.notifications import (
    appeal,
    eventually,
    inbound,
    lifecycle_events,
    notifications_service,
    private_settings,
    smtp_env,
    smtp_receiver,
    submitted_event,
)
from tests.support.particulars import APPELLANTS

pytestmark = pytest.mark.integration

EMAIL = "mirela.particulars@example.org"
PHONE = "+40721000111"


class Watched:
    """A particulars source that counts the answers it could not get (intake down)."""

    def __init__(self, source: ParticularsSource) -> None:
        self._source = source
        self.unavailable = 0

    async def get(self, appeal_id: str) -> intake_pb2.AppealParticulars:
        try:
            return await self._source.get(appeal_id)
        except ParticularsUnavailable:
            self.unavailable += 1
            raise


async def test_the_contact_is_read_from_intake_at_send_time_and_stored_nowhere_here(
    infra: Infrastructure, producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    intake = await start_intake(db, producer, tmp_path)
    body = fresh_body()
    body["appellant"] = dict(body["appellant"]) | {
        "contact": {"email": EMAIL, "phone": PHONE, "preferred_channel": "email"}
    }
    user_id = body["appellant"]["user_id"]
    port = free_port()
    _, jwks = devkeys.ensure(tmp_path)
    token = ServiceToken(devkeys.service_token_file(tmp_path, "notifications"))

    with smtp_receiver() as smtp:
        settings = private_settings(str(jwks), **smtp_env(smtp.port))
        async with IntakeParticulars(f"127.0.0.1:{port}", token, timeout_s=2) as particulars:
            # Intake takes the appeal in (and publishes its submitted event) but its gRPC
            # server is not up yet: notifications cannot learn where to write.
            answer = await intake.submit(body)
            assert answer.status_code == 202, answer.text
            appeal_id = answer.json()["appeal_id"]
            watched = Watched(particulars)
            service = await notifications_service(
                infra, db, producer, settings, {appeal_id}, particulars=watched
            )
            await service.start()
            try:

                async def tried() -> bool:
                    return watched.unavailable > 0

                # Notifications asked intake for the address and was turned away: nothing can
                # have gone out (waiting for that, not for a fixed time).
                await eventually(tried, "a read of the particulars while intake is down")
                assert smtp.to(EMAIL) == []
                assert await service.delivered(appeal_id) == []

                async with serving_grpc(intake, port):

                    async def emailed() -> bool:
                        return bool(smtp.to(EMAIL))

                    await eventually(emailed, "the email once intake answers", timeout_s=40)
            finally:
                await service.stop()
        await intake.client.aclose()

    (message,) = smtp.to(EMAIL)
    assert message["Subject"]
    (delivery,) = await service.notifications.deliveries(appeal_id)
    assert (delivery.kind, delivery.channel, delivery.recipient) == ("received", "email", "email")

    # Nothing notifications stored (the profile, the outbox record, its place in the appeal's
    # list and the daily slot it took: the test's database holds no other appeal), and nothing
    # on the lifecycle topic about the appeal (intake's submitted event, notifications'
    # notified event), holds the user id or an address.
    stored: list[Any] = []
    for collection in (
        repository.RECIPIENTS,
        repository.OUTBOX,
        repository.TOLD,
        repository.DAILY_SLOTS,
    ):
        stored += await db[collection].find({}).to_list()
    assert len(stored) == 4
    written = b"".join(encode(document) for document in stored)
    published = await lifecycle_events(
        infra.kafka_bootstrap_servers,
        {appeal_id},
        until=lambda found: {"submitted", "notified"} <= {e.WhichOneof("payload") for e in found},
    )
    assert len(published) == 2
    on_the_topic = b"".join(event.SerializeToString() for event in published)
    for secret in (user_id, EMAIL, PHONE, PHONE.lstrip("+")):
        assert secret.encode() not in written, secret
        assert secret.encode() not in on_the_topic, secret


async def handled(
    producer: EventProducer, db: store.Database, key_dir: Path, event: events_pb2.AppealEvent
) -> None:
    """One lifecycle event through notifications' own handler, on a store of its own, with
    the stand-in for intake's particulars."""
    _, jwks = devkeys.ensure(key_dir)
    settings = private_settings(str(jwks))
    await store.ensure_indexes(db, repository.INDEXES)
    notifications = repository.NotificationsRepository(db)
    async with httpx.AsyncClient() as http:
        notifier = build(settings, notifications, producer, http, APPELLANTS)
        await lifecycle_handler(notifier, group=settings.consumer_group)(inbound(event))


async def test_an_appeal_intake_does_not_know_is_dead_lettered_not_guessed(
    producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    stranger = f"ap_{uuid.uuid4().hex[:12]}"  # never registered with the stand-in for intake
    with pytest.raises(InvalidMessage, match="intake knows no appeal") as raised:
        await handled(producer, db, tmp_path, submitted_event(stranger, appeal()))
    assert raised.value.field == "appeal_id"


async def test_a_forgotten_appellant_is_not_told_and_nothing_is_dead_lettered(
    producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    appeal_id = f"ap_{uuid.uuid4().hex[:12]}"
    APPELLANTS.remember(appeal_id, appeal())
    APPELLANTS.erase(appeal_id)
    await handled(producer, db, tmp_path, submitted_event(appeal_id, appeal()))  # no InvalidMessage
    assert await db[repository.OUTBOX].count_documents({}) == 0
    assert APPELLANTS.reads.count(appeal_id) == 1  # asked intake, which said "erased"
