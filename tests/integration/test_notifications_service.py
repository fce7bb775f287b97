"""The notifications service against the real broker and store.

Its real handler runs in a ConsumerRunner over the real lifecycle topic, with a consumer group and
a database private to the test; other tests' appeals on the shared topic are skipped by id.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals import events, topics
from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack import devkeys
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.auth import AUDIENCE, DEV_ISSUER, TokenVerifier
from appeals_runtime.errors import InvalidMessage
from appeals_runtime.http import PROBLEM_JSON
from appeals_runtime.kafka.consumer import ConsumerRunner, Handler, InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.notifications import repository
from services.notifications.api import create_app
from services.notifications.consumer import lifecycle_handler
from services.notifications.main import build
from tests.support.notifications import (
    claimed,
    decided,
    inbound,
    lifecycle_events,
    private_settings,
    submitted,
)
from tests.support.particulars import APPELLANTS

pytestmark = pytest.mark.integration

LifecycleEvent = events_pb2.AppealEvent


async def notifications_service(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> tuple[repository.NotificationsRepository, Handler]:
    """The service's own pieces, wired as main wires them, on the test's database."""
    await store.ensure_indexes(db, repository.INDEXES)
    notifications = repository.NotificationsRepository(db)
    _, jwks = devkeys.ensure(tmp_path)
    settings = private_settings(str(jwks))
    notifier = build(settings, notifications, producer, httpx.AsyncClient(), APPELLANTS)
    return notifications, lifecycle_handler(notifier, group=settings.consumer_group)


async def test_each_appeal_event_is_notified_exactly_once_on_its_platform_channel(
    infra: Infrastructure, producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    notifications, handler = await notifications_service(db, producer, tmp_path)
    run = uuid.uuid4().hex[:10]
    platforms = {
        "facebook": (appeal_pb2.PLATFORM_FACEBOOK, "en-US", appeal_pb2.OUTCOME_UPHELD),
        "instagram": (appeal_pb2.PLATFORM_INSTAGRAM, "pt-PT", appeal_pb2.OUTCOME_OVERTURNED),
        "whatsapp": (appeal_pb2.PLATFORM_WHATSAPP, "de-DE", appeal_pb2.OUTCOME_UPHELD),
        "horizon": (appeal_pb2.PLATFORM_HORIZON, "de", appeal_pb2.OUTCOME_OVERTURNED),
    }
    appeal_ids = {name: f"ap_{run}_{name}" for name in platforms}
    firsts = [
        submitted(appeal_ids[name], platform, locale=locale)
        for name, (platform, locale, _) in platforms.items()
    ]
    claims = [claimed(appeal_id) for appeal_id in appeal_ids.values()]
    decisions = [decided(appeal_ids[name], outcome) for name, (_, _, outcome) in platforms.items()]
    # The same events again, as a producer retry or a crash before commit would bring, and a
    # second claim (a release and a new reviewer): the person already knows it is in review.
    redelivered = [decisions[2], firsts[0], claims[1]]
    reclaimed = claimed(appeal_ids["instagram"], 2)
    published = [*firsts, *claims, reclaimed, *decisions, *redelivered]

    handled: Counter[str] = Counter()
    all_handled = asyncio.Event()

    async def ours_only(message: InboundMessage[LifecycleEvent]) -> None:
        # The lifecycle topic is shared by the whole test session: leave other appeals alone.
        event = message.payload
        if event.appeal_id not in appeal_ids.values() or event.producer == "notifications":
            return
        await handler(message)
        handled[event.event_id] += 1
        if sum(handled.values()) == len(published):
            all_handled.set()

    runner = ConsumerRunner(
        name="notifications-test",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"notifications-test-{run}",
        topics=[topics.APPEAL_LIFECYCLE],
        handler=ours_only,
        producer=producer,
    )
    task = asyncio.create_task(runner.run())
    try:
        for event in published:
            await producer.publish(topics.APPEAL_LIFECYCLE, event)
        await asyncio.wait_for(all_handled.wait(), 30)
    finally:
        await runner.stop()
        await task

    # Exactly one outbox record per (appeal, event), redeliveries included.
    records = (
        await db[repository.OUTBOX].find({"appeal_id": {"$in": [*appeal_ids.values()]}}).to_list()
    )
    keys = Counter((r["appeal_id"], r["about_event_id"]) for r in records)
    assert set(keys) == {(e.appeal_id, e.event_id) for e in [*firsts, *claims, *decisions]}
    assert all(count == 1 for count in keys.values()), keys
    assert await db[repository.RECIPIENTS].count_documents({}) == 4

    by_appeal = {name: await notifications.deliveries(appeal_ids[name]) for name in platforms}
    channels = {name: {d.channel for d in deliveries} for name, deliveries in by_appeal.items()}
    assert channels == {
        "facebook": {"facebook_in_app"},
        "instagram": {"instagram_dm"},
        "whatsapp": {"whatsapp_template"},
        "horizon": {"horizon_headset"},
    }
    for deliveries in by_appeal.values():
        assert [d.kind for d in deliveries] == ["received", "in_review", "decided"]

    received, in_review, decision = by_appeal["whatsapp"]
    assert in_review.subject == "Ihr Einspruch wird geprüft"
    assert (received.locale, decision.locale) == ("de", "de")
    assert received.subject == "Wir haben Ihren Einspruch erhalten"
    assert "Ihr Beitrag bleibt entfernt" in decision.body
    assert "außergerichtliche Streitbeilegungsstelle" in decision.body
    assert decision.payload["template"]["name"] == "appeal_decided_upheld"
    assert decision.payload["template"]["language"] == {"code": "de"}
    # The record names the address by its kind; the address itself stays with intake.
    assert decision.payload["to"] == "<user_id>" and decision.recipient == "user_id"
    assert by_appeal["instagram"][2].locale == "pt-BR"  # pt-PT falls back to pt-BR
    assert "revertemos nossa decisão original" in by_appeal["instagram"][2].body
    assert by_appeal["horizon"][2].subject == "Ihr Einspruch war erfolgreich"

    # One notified event per notification, under ids derived from what they are about; the
    # redeliveries republished the same ids, which every consumer deduplicates.
    expected = {
        events.derived_event_id(e.appeal_id, "notified", e.event_id): e
        for e in [*firsts, *claims, *decisions]
    }
    notified = [
        event
        for event in await lifecycle_events(
            infra.kafka_bootstrap_servers,
            appeal_ids.values(),
            until=lambda found: expected.keys() <= {e.event_id for e in found},
        )
        if event.HasField("notified")
    ]
    assert {e.event_id for e in notified} == set(expected)
    for event in notified:
        about = expected[event.event_id]
        assert event.causation_id == about.event_id
        assert event.producer == "notifications"
        assert event.notified.about_event_id == about.event_id
        kinds = {"submitted": "received", "claimed": "in_review", "decided": "decided"}
        assert event.notified.kind == kinds[events.event_type(about)]
    whatsapp_notified = {
        e.notified.kind: e for e in notified if e.appeal_id == appeal_ids["whatsapp"]
    }
    assert whatsapp_notified["decided"].notified.channel == "whatsapp_template"
    assert whatsapp_notified["decided"].notified.locale == "de"


async def test_events_that_break_the_contract_or_arrive_out_of_order_are_invalid(
    producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    notifications, handler = await notifications_service(db, producer, tmp_path)
    appeal_id = f"ap_{uuid.uuid4().hex[:10]}"

    with pytest.raises(InvalidMessage, match="no submitted event seen") as raised:
        await handler(inbound(decided(appeal_id, appeal_pb2.OUTCOME_UPHELD)))
    assert raised.value.field == "appeal_id"

    await handler(inbound(submitted(appeal_id, appeal_pb2.PLATFORM_FACEBOOK, locale="en")))
    with pytest.raises(InvalidMessage) as raised:
        await handler(inbound(decided(appeal_id, appeal_pb2.OUTCOME_UNSPECIFIED)))
    assert raised.value.field == "decided.outcome"
    nameless = submitted("", appeal_pb2.PLATFORM_FACEBOOK, locale="en")
    with pytest.raises(InvalidMessage) as raised:
        await handler(inbound(nameless))
    assert raised.value.field == "appeal_id"

    # Routing's and the desk's events tell the appellant nothing: handled, nothing sent.
    routed = events.new_event(
        event_id=uuid.uuid4().hex,
        appeal_id=appeal_id,
        producer="tests",
        routed=events_pb2.AppealRouted(queue="facebook.hate_and_harassment.en"),
    )
    await handler(inbound(routed))
    assert [d.kind for d in await notifications.deliveries(appeal_id)] == ["received"]


async def test_ops_read_what_an_appellant_was_told_and_no_one_else_can(
    producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    notifications, handler = await notifications_service(db, producer, tmp_path)
    appeal_id = f"ap_{uuid.uuid4().hex[:10]}"
    await handler(inbound(submitted(appeal_id, appeal_pb2.PLATFORM_HORIZON, locale="de-DE")))
    await handler(inbound(decided(appeal_id, appeal_pb2.OUTCOME_OVERTURNED)))

    private_key, jwks = devkeys.ensure(tmp_path)
    verifier = TokenVerifier(
        json.loads(jwks.read_text()),
        issuer=DEV_ISSUER,
        audience=AUDIENCE,
        algorithms=["EdDSA"],
    )
    ops = devkeys.mint_token(private_key, role="ops", subject="ops-1")
    surface = devkeys.mint_token(
        private_key, role="surface", subject="horizon-app", platforms=["horizon"]
    )
    app = create_app(notifications, verifier)
    path = f"/v1/appeals/{appeal_id}/notifications"

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notifications"
    ) as client:
        answer = await client.get(path, headers={"Authorization": f"Bearer {ops}"})
        forbidden = await client.get(path, headers={"Authorization": f"Bearer {surface}"})
        anonymous = await client.get(path)
        forged = await client.get(path, headers={"Authorization": f"Bearer {ops}x"})
        unknown = await client.get(
            "/v1/appeals/ap_nobody/notifications", headers={"Authorization": f"Bearer {ops}"}
        )
        health = await client.get("/healthz")

    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["appeal_id"] == appeal_id
    listed = body["notifications"]
    assert [n["kind"] for n in listed] == ["received", "decided"]
    assert [n["about_event_id"] for n in listed] == [
        events.derived_event_id(appeal_id, "submitted"),
        events.derived_event_id(appeal_id, "decided"),
    ]
    # Compared as times: a time on a whole second is written without its fraction ("…28Z"),
    # which as text sorts after "…28.034Z".
    delivered = [datetime.fromisoformat(n["delivered_at"]) for n in listed]
    assert delivered[0] <= delivered[1]
    for notification in listed:
        assert notification.keys() == {
            "about_event_id",
            "kind",
            "channel",
            "platform",
            "locale",
            "recipient",
            "subject",
            "body",
            "delivered_at",
        }
        assert (notification["channel"], notification["platform"]) == (
            "horizon_headset",
            "horizon",
        )
        assert (notification["locale"], notification["recipient"]) == ("de", "user_id")
    assert listed[1]["subject"] == "Ihr Einspruch war erfolgreich"

    for refused, status in ((forbidden, 403), (anonymous, 401), (forged, 401), (unknown, 404)):
        assert refused.status_code == status, refused.text
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert refused.json()["status"] == status
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert health.status_code == 200
