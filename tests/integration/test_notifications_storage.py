"""How notifications uses the store, against the real FerretDB: every operation names its
document by ``_id`` (FerretDB answers nothing else from an index, so anything else grows with
the history the store holds), the daily limit holds under concurrent handlers and two
instances, and a store of the shapes before id keys is moved to them once.

Commands are recorded where they leave the client (PyMongo command monitoring), so a query
added anywhere in the service's path shows up here whatever code sends it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, monitoring

from appeals import events, topics
from appeals.v1 import events_pb2
from appeals_devstack import devkeys
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer
from services.notifications import repository
from services.notifications.consumer import lifecycle_handler, retry_handler
from services.notifications.main import build
from services.notifications.retries import PendingAttempt
from tests.support.notifications import (
    ManualClock,
    appeal,
    claimed,
    decided,
    inbound,
    new_appeal_id,
    private_settings,
    submitted,
    submitted_event,
    topic_records,
)
from tests.support.particulars import APPELLANTS
from tests.support.store_commands import watched_client

pytestmark = pytest.mark.integration

# 14:00 UTC: no quiet hours anywhere they matter here (the tests' people name no time zone).
AFTERNOON = datetime(2025, 6, 3, 14, 0, tzinfo=UTC)
COLLECTIONS = {
    repository.RECIPIENTS,
    repository.OUTBOX,
    repository.TOLD,
    repository.DAILY_SLOTS,
    repository.MIGRATIONS,
    repository.OLD_MILESTONES,
}
# Commands that address documents, and where their filters are.
FILTERED = {"find": "filter", "update": "updates", "delete": "deletes"}


class Recorder(monitoring.CommandListener):
    """Every command sent to one database, as sent."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.commands: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def on_collections(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, cmd) for name, cmd in self.commands if cmd.get(name) in COLLECTIONS]


@pytest.fixture
async def recorded(
    infra: Infrastructure, db: store.Database
) -> AsyncIterator[tuple[store.Database, Recorder]]:
    """The test's database through a client that records every command sent to it."""
    recorder = Recorder(db.name)
    client: AsyncMongoClient[store.Document] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[recorder]
    )
    try:
        yield client[db.name], recorder
    finally:
        await client.close()


def names_its_documents(command: str, body: dict[str, Any]) -> bool:
    """Whether a command addresses documents by _id only: inserts carry a string _id; finds,
    updates and deletes filter on an _id value or an $in of them."""
    if command == "insert":
        return all(isinstance(document.get("_id"), str) for document in body["documents"])
    if command == "find":
        filters = [body["filter"]]
    elif command in ("update", "delete"):
        filters = [statement["q"] for statement in body[FILTERED[command]]]
    else:
        return False  # count, aggregate, distinct, findAndModify...: never on the hot path
    return all(_by_id(query) for query in filters)


def _by_id(query: dict[str, Any]) -> bool:
    value = query.get("_id")
    if isinstance(value, str):
        return True
    return (
        isinstance(value, dict)
        and set(value) == {"$in"}
        and all(isinstance(item, str) for item in value["$in"])
    )


def info_requested(appeal_id: str) -> events_pb2.AppealEvent:
    return events.new_event(
        event_id=events.derived_event_id(appeal_id, "info_requested"),
        appeal_id=appeal_id,
        producer="tests",
        info_requested=events_pb2.MoreInformationRequested(
            agent_id="agent-1", question="Which post of yours do you mean?"
        ),
    )


def escalated(appeal_id: str) -> events_pb2.AppealEvent:
    return events.new_event(
        event_id=events.derived_event_id(appeal_id, "escalated"),
        appeal_id=appeal_id,
        producer="tests",
        escalated=events_pb2.AppealEscalated(target="senior"),
    )


async def test_every_store_operation_of_the_service_is_an_id_lookup(
    producer: EventProducer,
    recorded: tuple[store.Database, Recorder],
    tmp_path: Path,
) -> None:
    database, recorder = recorded
    _, jwks = devkeys.ensure(tmp_path)
    settings = private_settings(str(jwks), NOTIFICATIONS_DAILY_LIMIT="2")
    notifications = repository.NotificationsRepository(database)
    one, other = new_appeal_id("_one"), new_appeal_id("_other")
    async with httpx.AsyncClient() as http:
        notifier = build(
            settings, notifications, producer, http, APPELLANTS, clock=ManualClock(AFTERNOON)
        )
        on_lifecycle = lifecycle_handler(notifier, group=settings.consumer_group)
        on_retry = retry_handler(notifier, group=settings.retry_consumer_group)
        # Every path a notification can take: first deliveries of each kind, a re-claim
        # (already told), the daily limit reached (deferred), redeliveries (announced again),
        # waiting news superseded by the decision, and the ops API's read.
        lifecycle = [
            submitted(one, person="p-1"),
            claimed(one),
            claimed(one, 2),
            escalated(one),
            info_requested(one),
            decided(one),
            submitted(other, person="p-1"),
        ]
        for event in lifecycle + lifecycle:
            await on_lifecycle(inbound(event))
        waited = PendingAttempt("", 1, AFTERNOON, "daily_limit", settings.consumer_group)
        await on_retry(inbound(escalated(one)), waited)
        told = await notifications.notifications_of(one)

    assert told is not None
    assert [d.kind for d in told] == ["received", "in_review", "info_requested", "decided"]
    assert await notifications.deliveries(other) == []  # the person's third message today
    sent = recorder.on_collections()
    # Documents are written once, never updated (FerretDB's updates are not atomic).
    assert {name for name, _ in sent} == {"find", "insert"}
    assert {body[name] for name, body in sent} == {
        repository.RECIPIENTS,
        repository.OUTBOX,
        repository.TOLD,
        repository.DAILY_SLOTS,
    }
    assert not [(name, body) for name, body in sent if not names_its_documents(name, body)]
    # And FerretDB answers each of those finds from its _id index.
    for name, body in sent:
        if name == "find":
            explained = await database.command(
                "explain", {"find": body["find"], "filter": body["filter"]}
            )
            plan = " ".join(str(step) for step in explained["queryPlanner"]["Plan"])
            assert "SEARCH" in plan and "USING INDEX" in plan, (body, plan)


async def test_the_daily_limit_holds_for_concurrent_handlers_and_two_instances(
    infra: Infrastructure, producer: EventProducer, db: store.Database, tmp_path: Path
) -> None:
    """One person, eight appeals handled at once by two instances (each with its own store
    client), a limit of three: three go today, five wait, also when every event comes again."""
    _, jwks = devkeys.ensure(tmp_path)
    settings = private_settings(str(jwks), NOTIFICATIONS_DAILY_LIMIT="3")
    person = f"p-{uuid.uuid4().hex[:8]}"
    appeals = [new_appeal_id(f"_busy{i}") for i in range(8)]
    published = [submitted(appeal_id, person=person) for appeal_id in appeals]
    clients = [store.create_client(infra.mongodb_url, app_name=f"instance-{i}") for i in (1, 2)]
    try:
        async with httpx.AsyncClient() as http:
            handlers = [
                lifecycle_handler(
                    build(
                        settings,
                        repository.NotificationsRepository(client[db.name]),
                        producer,
                        http,
                        APPELLANTS,
                        clock=ManualClock(AFTERNOON),
                    ),
                    group=settings.consumer_group,
                )
                for client in clients
            ]

            async def handle_all(events_: Iterable[events_pb2.AppealEvent]) -> None:
                await asyncio.gather(
                    *(handlers[i % 2](inbound(event)) for i, event in enumerate(events_))
                )

            await handle_all(published)
            notifications = repository.NotificationsRepository(db)
            first_round = {a: await notifications.deliveries(a) for a in appeals}
            # The same events again (a rebalance or restart), the other instance each time.
            await handle_all([*published[1:], published[0]])
            second_round = {a: await notifications.deliveries(a) for a in appeals}
    finally:
        for client in clients:
            await client.close()

    delivered = sorted(a for a, told in first_round.items() if told)
    assert len(delivered) == 3
    assert second_round == first_round
    slots = await db[repository.DAILY_SLOTS].find({}).to_list()
    assert sorted(slot["_id"] for slot in slots) == [
        f"{person}/{AFTERNOON.date().isoformat()}/{i}" for i in range(3)
    ]
    assert sorted(slot["holder"] for slot in slots) == sorted(
        repository.outbox_id(a, events.derived_event_id(a, "submitted")) for a in delivered
    )
    # The five others wait for tomorrow on the retry topic, each time they came.
    records = await topic_records(
        infra.kafka_bootstrap_servers,
        topics.NOTIFICATION_RETRIES.name,
        appeals,
        until=lambda found: len(found) >= 10,
    )
    waits = [PendingAttempt.from_headers(dict(r.headers)) for r in records]
    assert Counter(r.key.decode() for r in records) == {a: 2 for a in appeals if a not in delivered}
    assert {(p.reason, p.due_at) for p in waits} == {
        ("daily_limit", datetime(2025, 6, 4, tzinfo=UTC))
    }


async def test_a_reserved_slot_is_the_notifications_own_until_given_back(
    db: store.Database,
) -> None:
    notifications = repository.NotificationsRepository(db)
    day = date(2025, 6, 3)

    async def reserve(appeal_id: str) -> str | None:
        return await notifications.reserve_daily_slot(
            "p-slots", day, appeal_id=appeal_id, about_event_id="e-1", limit=2
        )

    # A redelivered or retried notification keeps its slot, and takes no second one.
    first, again, other = await reserve("a"), await reserve("a"), await reserve("b")
    assert first == again == "p-slots/2025-06-03/0"
    assert other == "p-slots/2025-06-03/1"
    assert [await reserve("c"), await reserve("a")] == [None, first]
    # A notification that reached nobody gives its slot back; giving back twice is harmless,
    # and only the holder can.
    await notifications.release_daily_slot(other, appeal_id="c", about_event_id="e-1")
    for _ in range(2):
        await notifications.release_daily_slot(first, appeal_id="a", about_event_id="e-1")
    assert await reserve("c") == first
    slots = await db[repository.DAILY_SLOTS].find({}).to_list()
    assert sorted((slot["_id"], slot["holder"]) for slot in slots) == [
        ("p-slots/2025-06-03/0", "c/e-1"),
        ("p-slots/2025-06-03/1", "b/e-1"),
    ]


async def test_a_first_notice_takes_the_first_free_slot_of_the_day_in_one_insert_if_it_can(
    infra: Infrastructure, db: store.Database
) -> None:
    """An appeal's first notice holds no slot: it tries the person's first slot at once (one
    insert, no read); when that one is taken it reads the slots as any notice does, and the
    limit still holds."""
    client, commands = watched_client(infra.mongodb_url)
    try:
        notifications = repository.NotificationsRepository(client[db.name])
        day = date(2025, 6, 3)

        async def reserve(appeal_id: str) -> str | None:
            return await notifications.reserve_daily_slot(
                "p-first", day, appeal_id=appeal_id, about_event_id="e-1", limit=2,
                holds_none=True,
            )  # fmt: skip

        assert await reserve("a") == "p-first/2025-06-03/0"
        assert [c.name for c in commands.on(repository.DAILY_SLOTS, "insert", "find")] == ["insert"]
        assert await reserve("b") == "p-first/2025-06-03/1"  # the first was taken: read, then 1
        assert await reserve("c") is None
    finally:
        await client.close()


# --- the shapes before id keys ------------------------------------------------------------------

OLD_INDEXES = [
    store.IndexSpec(repository.RECIPIENTS, [("appeal_id", 1)], unique=True),
    store.IndexSpec(repository.OUTBOX, [("appeal_id", 1), ("about_event_id", 1)], unique=True),
    store.IndexSpec(repository.OUTBOX, [("appeal_id", 1), ("delivered_at", 1)]),
    store.IndexSpec(repository.OUTBOX, [("person", 1), ("delivered_at", 1)]),
    store.IndexSpec(repository.OLD_MILESTONES, [("appeal_id", 1), ("kind", 1)], unique=True),
]


def old_profile(appeal_id: str) -> dict[str, Any]:
    """A profile as stored before id keys, from before intake kept contacts alone."""
    return {
        "appeal_id": appeal_id,
        "submitted_event_id": events.derived_event_id(appeal_id, "submitted"),
        "platform": "facebook",
        "person": "p-old",
        "locale": "en-GB",
        "country": "GB",
        "subject": {"kind": "post", "id": "post-1"},
        "original_decision": {
            "policy": "hate_speech",
            "action": "removed",
            "automated": True,
            "decided_at": None,
        },
        "received_at": AFTERNOON,
        "user_id": "old-user-1",
        "contact": {"email": "old.person@example.org"},
    }


def old_delivery(appeal_id: str, about: str, kind: str, minute: int) -> dict[str, Any]:
    return {
        "appeal_id": appeal_id,
        "about_event_id": about,
        "kind": kind,
        "template": kind,
        "channel": "facebook_in_app",
        "platform": "facebook",
        "locale": "en",
        "recipient": "user_id",
        "subject": f"old {kind}",
        "body": f"old {kind} body",
        "payload": {"to": "<user_id>"},
        "delivered_at": AFTERNOON.replace(hour=9, minute=minute),
        "delivery_id": events.derived_event_id(appeal_id, "delivery", about, "facebook_in_app"),
        "person": "p-old",
        "attempt": 1,
    }


async def test_a_store_of_the_old_shapes_is_moved_to_id_keys_once(
    producer: EventProducer,
    db: store.Database,
    recorded: tuple[store.Database, Recorder],
    tmp_path: Path,
) -> None:
    old = new_appeal_id("_old")
    APPELLANTS.remember(old, appeal())
    received, first_claim = (
        events.derived_event_id(old, "submitted"),
        claimed(old).event_id,
    )
    await store.ensure_indexes(db, OLD_INDEXES)
    await db[repository.RECIPIENTS].insert_one(old_profile(old))
    await db[repository.OLD_MILESTONES].insert_many(
        [
            {"appeal_id": old, "kind": "received", "about_event_id": received},
            {"appeal_id": old, "kind": "in_review", "about_event_id": first_claim},
        ]
    )
    await db[repository.OUTBOX].insert_many(
        [
            old_delivery(old, received, "received", 1),
            old_delivery(old, first_claim, "in_review", 2),
        ]
    )

    notifications = repository.NotificationsRepository(db)
    assert await notifications.migrate_stored_shapes() is True

    (profile,) = await db[repository.RECIPIENTS].find({}).to_list()
    assert profile["_id"] == old
    assert "contact" not in profile and "user_id" not in profile
    assert sorted(d["_id"] for d in await db[repository.OUTBOX].find({}).to_list()) == sorted(
        [repository.outbox_id(old, received), repository.outbox_id(old, first_claim)]
    )
    told = {d["_id"]: d["about_event_id"] for d in await db[repository.TOLD].find({}).to_list()}
    assert told == {
        f"{old}/first/in_review": first_claim,
        f"{old}/0": received,
        f"{old}/1": first_claim,
    }
    assert repository.OLD_MILESTONES not in await db.list_collection_names()
    for collection in (repository.RECIPIENTS, repository.OUTBOX):
        names = [index["name"] async for index in await db[collection].list_indexes()]
        assert names == ["_id_"], (collection, names)

    # Every later start: one lookup of the marker, by _id.
    database, recorder = recorded
    assert await repository.NotificationsRepository(database).migrate_stored_shapes() is False
    assert [(name, body.get(name), body.get("filter")) for name, body in recorder.commands] == [
        ("find", repository.MIGRATIONS, {"_id": repository.ID_KEYS_MIGRATION})
    ]

    # The moved appeal carries on: a second claim tells nothing new, the decision goes out,
    # a redelivered old event is announced again, not re-sent.
    _, jwks = devkeys.ensure(tmp_path)
    settings = private_settings(str(jwks))
    async with httpx.AsyncClient() as http:
        notifier = build(
            settings, notifications, producer, http, APPELLANTS, clock=ManualClock(AFTERNOON)
        )
        handler = lifecycle_handler(notifier, group=settings.consumer_group)
        for event in (claimed(old, 2), decided(old), claimed(old), submitted_event(old, appeal())):
            await handler(inbound(event))
    listed = await notifications.notifications_of(old)
    assert listed is not None
    assert [d.kind for d in listed] == ["received", "in_review", "decided"]
    assert [d.subject for d in listed[:2]] == ["old received", "old in_review"]
    assert await db[repository.TOLD].find_one({"_id": f"{old}/first/decided"}) is not None
