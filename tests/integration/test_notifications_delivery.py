"""Delivery against real servers, the real broker and the real store: email over SMTP (aiosmtpd),
a signed webhook checked by a real HTTP receiver, a WhatsApp API that does not know a number,
transient failures retried through the retry topic, permanent failures falling back and
dead-lettered, quiet hours and daily limits on a clock the test moves, and the ops metrics."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import generate_latest

from appeals import events, topics
from appeals.v1 import appeal_pb2
from appeals_devstack import devkeys
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.auth import AUDIENCE, DEV_ISSUER, TokenVerifier
from appeals_runtime.kafka import dead_letters
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.telemetry import setup_telemetry
from services.notifications import metrics
from services.notifications.api import create_app
from services.notifications.messages import RIGHT_TO_LEFT_MARK
from services.notifications.repository import NotificationsRepository
from services.notifications.retries import PendingAttempt
from tests.support.notifications import (
    WEBHOOK_SECRET,
    ManualClock,
    claimed,
    decided,
    dlq_headers,
    eventually,
    http_receiver,
    lifecycle_events,
    new_appeal_id,
    notifications_service,
    private_settings,
    smtp_env,
    smtp_receiver,
    submitted,
    topic_records,
)

pytestmark = pytest.mark.integration

# Counters and gauges land in this process's Prometheus registry, as in the service.
setup_telemetry("notifications-tests", otlp_endpoint=None)


def delivery_id(appeal_id: str, about_event_id: str, channel: str) -> str:
    return events.derived_event_id(appeal_id, "delivery", about_event_id, channel)


def counter(name: str, **labels: str) -> float:
    """The current value of a Prometheus sample whose labels include ``labels``."""
    total = 0.0
    for line in generate_latest().decode().splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_email_and_a_signed_webhook_reach_real_servers_exactly_once(
    infra: Infrastructure, producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    _, jwks = devkeys.ensure(tmp_path)
    by_email, by_hook = new_appeal_id("_mail"), new_appeal_id("_hook")
    with smtp_receiver() as smtp:
        async with http_receiver() as hook:
            settings = private_settings(
                str(jwks),
                **smtp_env(smtp.port),
                NOTIFICATIONS_WEBHOOK_URL=hook.url,
                NOTIFICATIONS_WEBHOOK_SECRET=WEBHOOK_SECRET,
                NOTIFICATIONS_PLATFORM_CHANNELS='{"horizon": "webhook"}',
            )
            service = await notifications_service(
                infra, db, producer, settings, {by_email, by_hook}
            )
            contact = appeal_pb2.Contact(email="layla@example.org", preferred_channel="email")
            published = [
                submitted(by_email, locale="ar-EG", contact=contact),
                decided(by_email),
                submitted(by_hook, appeal_pb2.PLATFORM_HORIZON, user_id="hz-7"),
                decided(by_hook, appeal_pb2.OUTCOME_OVERTURNED),
            ]
            await service.start()
            try:
                # Each event twice, as a producer retry or a crash before commit would bring it.
                for event in published + published:
                    await producer.publish(topics.APPEAL_LIFECYCLE, event)

                async def all_handled() -> bool:
                    return len(service.handled) == 2 * len(published)

                await eventually(all_handled, "every event and its redelivery handled")
            finally:
                await service.stop()

    # Two emails, one per (appeal, event), each once, multipart, right to left.
    mails = smtp.to("layla@example.org")
    assert sorted(m["Message-ID"] for m in mails) == sorted(
        f"<{delivery_id(by_email, e.event_id, 'email')}@example.org>" for e in published[:2]
    )
    decision_id = f"<{delivery_id(by_email, published[1].event_id, 'email')}@example.org>"
    (decision_mail,) = (m for m in mails if m["Message-ID"] == decision_id)
    text = decision_mail.get_body(("plain",))
    html = decision_mail.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().startswith(RIGHT_TO_LEFT_MARK)
    assert '<html lang="ar" dir="rtl">' in html.get_content()
    assert decision_mail["Content-Language"] == "ar"
    assert decision_mail["From"] == "Appeals <appeals@example.org>"
    assert [d.channel for d in await service.notifications.deliveries(by_email)] == [
        "email",
        "email",
    ]

    # Two signed webhook calls the receiver verified, one per (appeal, event).
    assert len(hook.requests) == 2
    assert all(request.signature_valid for request in hook.requests)
    bodies = [request.json() for request in hook.requests]
    assert [b["template"] for b in bodies] == ["received", "decided_overturned"]
    assert {(b["platform"], b["user_id"], b["locale"]) for b in bodies} == {
        ("horizon", "hz-7", "en")
    }
    for request, body in zip(hook.requests, bodies, strict=True):
        assert request.headers["x-appeals-delivery"] == body["delivery_id"]
    assert [d.channel for d in await service.notifications.deliveries(by_hook)] == [
        "webhook",
        "webhook",
    ]


async def test_a_transient_failure_is_retried_through_the_retry_topic_without_blocking(
    infra: Infrastructure, producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    _, jwks = devkeys.ensure(tmp_path)
    flaky, steady = new_appeal_id("_flaky"), new_appeal_id("_steady")
    async with http_receiver() as hook:
        # The surface is down twice (once naming when to come back), then takes the message,
        # but only once the other appeal was told: the lifecycle consumer must not wait for it.
        hook.script = [(503, {"Retry-After": "0"}, b""), (502, {}, b"")]
        hook.back = asyncio.Event()
        settings = private_settings(
            str(jwks),
            NOTIFICATIONS_WEBHOOK_URL=hook.url,
            NOTIFICATIONS_WEBHOOK_SECRET=WEBHOOK_SECRET,
            NOTIFICATIONS_PLATFORM_CHANNELS='{"horizon": "webhook"}',
        )
        service = await notifications_service(infra, db, producer, settings, {flaky, steady})
        transient_before = counter(
            "appeals_notifications_failed_total", channel="webhook", permanent="false"
        )
        await service.start()
        try:
            await producer.publish(
                topics.APPEAL_LIFECYCLE, submitted(flaky, appeal_pb2.PLATFORM_HORIZON)
            )
            await producer.publish(topics.APPEAL_LIFECYCLE, submitted(steady))

            async def steady_delivered() -> bool:
                return await service.delivered(steady) == ["received"]

            await eventually(steady_delivered, "the other appeal's delivery")
            hook.back.set()

            async def flaky_delivered() -> bool:
                return await service.delivered(flaky) == ["received"]

            await eventually(flaky_delivered, "the flaky surface's delivery")
        finally:
            await service.stop()

    # Three calls of the same delivery; the third one was taken.
    assert [r.headers["x-appeals-delivery"] for r in hook.requests] == [
        delivery_id(flaky, submitted(flaky).event_id, "webhook")
    ] * 3
    (delivery,) = await service.notifications.deliveries(flaky)
    assert (delivery.channel, delivery.attempt) == ("webhook", 3)
    # The lifecycle consumer did not wait for the flaky surface: the next appeal went first.
    (other,) = await service.notifications.deliveries(steady)
    assert other.delivered_at <= delivery.delivered_at
    # The waits went through the retry topic, with attempt, channel and due time in headers.
    records = await topic_records(
        infra.kafka_bootstrap_servers,
        topics.NOTIFICATION_RETRIES.name,
        [flaky],
        until=lambda found: len(found) >= 2,
    )
    pending = [PendingAttempt.from_headers(dict(r.headers)) for r in records]
    assert [(p.channel, p.attempt) for p in pending] == [("webhook", 2), ("webhook", 3)]
    assert all(p.group == settings.consumer_group for p in pending)
    assert "HTTP 503" in pending[0].reason
    # One notified event, whatever the number of attempts.
    notified = await lifecycle_events(
        infra.kafka_bootstrap_servers,
        [flaky],
        until=lambda found: any(e.HasField("notified") for e in found),
    )
    assert [e.notified.channel for e in notified if e.HasField("notified")] == ["webhook"]
    assert (
        counter("appeals_notifications_failed_total", channel="webhook", permanent="false")
        - transient_before
        == 2
    )


async def test_a_surface_down_for_longer_than_the_retries_counts_as_permanent(
    infra: Infrastructure, producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    _, jwks = devkeys.ensure(tmp_path)
    down = new_appeal_id("_down")
    with smtp_receiver() as smtp:
        async with http_receiver() as hook:
            hook.answer = lambda request: (503, {}, b"down for maintenance")
            settings = private_settings(
                str(jwks),
                **smtp_env(smtp.port),
                NOTIFICATIONS_WEBHOOK_URL=hook.url,
                NOTIFICATIONS_WEBHOOK_SECRET=WEBHOOK_SECRET,
                NOTIFICATIONS_PLATFORM_CHANNELS='{"horizon": "webhook"}',
                NOTIFICATIONS_RETRY_MAX_ATTEMPTS="3",
            )
            service = await notifications_service(infra, db, producer, settings, {down})
            await service.start()
            try:
                contact = appeal_pb2.Contact(email="sam@example.org")
                await producer.publish(
                    topics.APPEAL_LIFECYCLE,
                    submitted(down, appeal_pb2.PLATFORM_HORIZON, contact=contact),
                )

                async def delivered() -> bool:
                    return await service.delivered(down) == ["received"]

                await eventually(delivered, "the fallback delivery")
            finally:
                await service.stop()

    assert len(hook.requests) == 3
    assert [d.channel for d in await service.notifications.deliveries(down)] == ["email"]
    assert len(smtp.to("sam@example.org")) == 1
    (dead,) = await topic_records(
        infra.kafka_bootstrap_servers,
        topics.NOTIFICATION_RETRIES.dlq,
        [down],
        until=lambda found: len(found) >= 1,
    )
    headers = dlq_headers(dead)
    assert headers["dlq.error.type"] == "RetriesExhausted"
    assert headers["dlq.attempts"] == "3"
    assert "gave up after 3 attempts: HTTP 503" in headers["dlq.error.message"]
    # The last attempt ran from the retry topic, in the retry scheduler's group.
    assert headers["dlq.original.topic"] == topics.NOTIFICATION_RETRIES.name
    assert headers["dlq.consumer.group"] == settings.retry_consumer_group


async def test_a_permanent_failure_falls_back_and_dead_letters_the_failed_attempt(
    infra: Infrastructure, producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    _, jwks = devkeys.ensure(tmp_path)
    gone, refused = new_appeal_id("_gone"), new_appeal_id("_refused")

    def whatsapp_api(request: Any) -> tuple[int, dict[str, str], bytes]:
        # The Cloud API's answer for a number that is not (or no longer) on WhatsApp.
        error = {"error": {"code": 131026, "message": "Message undeliverable"}}
        return 400, {"Content-Type": "application/json"}, json.dumps(error).encode()

    with smtp_receiver() as smtp:
        smtp.refuse("nobody@example.org", "550 5.1.1 mailbox unavailable")
        async with http_receiver() as whatsapp:
            whatsapp.answer = whatsapp_api
            settings = private_settings(
                str(jwks),
                **smtp_env(smtp.port),
                NOTIFICATIONS_WHATSAPP_URL=whatsapp.url,
                NOTIFICATIONS_WHATSAPP_TOKEN="test-token",
            )
            service = await notifications_service(infra, db, producer, settings, {gone, refused})
            dead_before = counter(
                "appeals_notifications_dead_lettered_total", channel="whatsapp_template"
            )
            await service.start()
            try:
                events_published = [
                    submitted(
                        gone,
                        appeal_pb2.PLATFORM_WHATSAPP,
                        user_id="4915100000000",
                        contact=appeal_pb2.Contact(email="kai@example.org"),
                    ),
                    decided(gone),
                    submitted(
                        refused,
                        appeal_pb2.PLATFORM_INSTAGRAM,
                        contact=appeal_pb2.Contact(
                            email="nobody@example.org", preferred_channel="email"
                        ),
                    ),
                ]
                for event in events_published:
                    await producer.publish(topics.APPEAL_LIFECYCLE, event)

                async def fell_back() -> bool:
                    return len(await service.delivered(gone)) == 2 and bool(
                        await service.delivered(refused)
                    )

                await eventually(fell_back, "deliveries on the fallback channels")
            finally:
                await service.stop()

    # WhatsApp does not know the number: email took over, for both messages.
    assert [d.channel for d in await service.notifications.deliveries(gone)] == ["email", "email"]
    assert len(smtp.to("kai@example.org")) == 2
    assert {r.headers["authorization"] for r in whatsapp.requests} == {"Bearer test-token"}
    assert all(r.json()["to"] == "4915100000000" for r in whatsapp.requests)
    # The preferred email was refused for good: the platform's own channel took over.
    assert [d.channel for d in await service.notifications.deliveries(refused)] == ["instagram_dm"]

    # One DLQ entry per failed attempt, with the reason, the channel and the original event.
    dead = await topic_records(
        infra.kafka_bootstrap_servers,
        topics.NOTIFICATION_RETRIES.dlq,
        [gone, refused],
        until=lambda found: len(found) >= 3,
    )
    entries = sorted(
        (dlq_headers(r)["notifications.channel"], dlq_headers(r)["notifications.kind"], r)
        for r in dead
    )
    assert [(channel, kind) for channel, kind, _ in entries] == [
        ("email", "received"),
        ("whatsapp_template", "decided"),
        ("whatsapp_template", "received"),
    ]
    for channel, _, record in entries:
        headers = dlq_headers(record)
        assert headers["dlq.error.type"] == "PermanentFailure"
        assert headers["dlq.original.topic"] == topics.APPEAL_LIFECYCLE.name
        assert headers["dlq.consumer.group"] == settings.consumer_group
        assert ("131026" if channel == "whatsapp_template" else "550") in headers[
            "dlq.error.message"
        ]
        assert topics.APPEAL_LIFECYCLE.decode(record.value).appeal_id in (gone, refused)

    # The lifecycle says so too: notification_failed for the channel, then notified on another.
    lifecycle = await lifecycle_events(
        infra.kafka_bootstrap_servers,
        [gone],
        until=lambda found: sum(e.HasField("notified") for e in found) >= 2,
    )
    failed = [e.notification_failed for e in lifecycle if e.HasField("notification_failed")]
    assert {(f.kind, f.channel, f.permanent) for f in failed} == {
        ("received", "whatsapp_template", True),
        ("decided", "whatsapp_template", True),
    }
    assert {e.notified.channel for e in lifecycle if e.HasField("notified")} == {"email"}
    assert (
        counter("appeals_notifications_dead_lettered_total", channel="whatsapp_template")
        - dead_before
        == 2
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        assert await dead_letters.records_in(admin, consumer, topics.NOTIFICATION_RETRIES.dlq) >= 3
    finally:
        await consumer.stop()
        await admin.close()


async def test_quiet_hours_and_daily_limits_defer_news_but_never_the_decision(
    infra: Infrastructure, producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    _, jwks = devkeys.ensure(tmp_path)
    berlin = ZoneInfo("Europe/Berlin")
    clock = ManualClock(datetime(2025, 3, 4, 23, 0, tzinfo=berlin).astimezone(UTC))
    night_decided, night_only = new_appeal_id("_decided"), new_appeal_id("_waits")
    busy = [new_appeal_id(f"_busy{i}") for i in range(3)]
    settings = private_settings(
        str(jwks), NOTIFICATIONS_QUIET_HOURS="22:00-08:00", NOTIFICATIONS_DAILY_LIMIT="2"
    )
    ours = {night_decided, night_only, *busy}
    service = await notifications_service(infra, db, producer, settings, ours, clock=clock)
    in_berlin = appeal_pb2.Contact(time_zone="Europe/Berlin")
    await service.start()
    try:
        # 23:00 in Berlin: "received" waits for the morning, the decision goes at once.
        for event in (
            submitted(night_decided, contact=in_berlin, person="p-1"),
            claimed(night_decided),
            decided(night_decided),
            submitted(night_only, contact=in_berlin, person="p-2"),
        ):
            await producer.publish(topics.APPEAL_LIFECYCLE, event)

        async def night_handled() -> bool:
            return len(service.handled) == 4 and service.retries.waiting >= 3

        await eventually(night_handled, "the night's events handled and held")
        assert await service.delivered(night_decided) == ["decided"]
        assert await service.delivered(night_only) == []

        # 08:00 in Berlin: what waited goes out, except news the decision made stale.
        clock.advance(timedelta(hours=9, minutes=1))

        async def morning() -> bool:
            return await service.delivered(night_only) == ["received"]

        await eventually(morning, "the deferred message in the morning")
        assert await service.delivered(night_decided) == ["decided"]

        # One person, three appeals, a limit of two a day: the third waits for tomorrow.
        for appeal_id in busy:
            await producer.publish(
                topics.APPEAL_LIFECYCLE, submitted(appeal_id, contact=in_berlin, person="p-3")
            )

        async def two_today() -> bool:
            delivered = [await service.delivered(a) for a in busy]
            return sorted(len(d) for d in delivered) == [0, 1, 1] and len(service.handled) == 7

        await eventually(two_today, "two of three messages today")
        clock.advance(timedelta(days=1))

        async def third_tomorrow() -> bool:
            return all([await service.delivered(a) == ["received"] for a in busy])

        await eventually(third_tomorrow, "the third message the next morning")
    finally:
        await service.stop()

    times = sorted([(await service.notifications.deliveries(a))[0].delivered_at for a in busy])
    assert times[2].astimezone(berlin).date() == times[0].astimezone(berlin).date() + timedelta(1)
    records = await topic_records(
        infra.kafka_bootstrap_servers,
        topics.NOTIFICATION_RETRIES.name,
        ours,
        until=lambda found: len(found) >= 4,
    )
    reasons = Counter(PendingAttempt.from_headers(dict(r.headers)).reason for r in records)
    # "received" and "in review" of one appeal, "received" of the other, the third of three.
    assert reasons == {"quiet_hours": 3, "daily_limit": 1}


async def test_ops_see_deliveries_failures_and_queues_on_metrics(
    producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    _, jwks = devkeys.ensure(tmp_path)
    verifier = TokenVerifier(
        json.loads(jwks.read_text()), issuer=DEV_ISSUER, audience=AUDIENCE, algorithms=["EdDSA"]
    )
    app = create_app(NotificationsRepository(db), verifier)
    metrics.delivered.add(0, {"channel": "email", "kind": "decided"})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notifications"
    ) as client:
        exposition = (await client.get("/metrics")).text
    for name in (
        "appeals_notifications_delivered_total",
        "appeals_notifications_retry_waiting",
        "appeals_notifications_retry_backlog",
    ):
        assert re.search(rf"^{name}\{{", exposition, re.MULTILINE), name
