"""Group commit against the real broker and store: events handed over together share one write,
and every guarantee of appending one at a time still holds (one entry per event, per-appeal order,
contiguous slots, another instance appending at the same time, a delivery that stopped half-way)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appeals import topics
from appeals.v1 import events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer
from services.audit.consumer import audit_consumer
from services.audit.log import entries, records
from services.audit.log.appeal_index import APPEAL_ENTRIES
from services.audit.log.appender import Append
from services.audit.log.repository import AUDIT_LOG, EVENT_SLOTS, Appended
from tests.support.audit import Audit, lifecycle, new_appeal_id, open_audit, record
from tests.support.store_commands import CommandLog, watched_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def watched(
    infra: Infrastructure, db: store.Database, tmp_path: Path
) -> AsyncIterator[tuple[Audit, CommandLog]]:
    """The audit log on the test database through a client whose commands are recorded."""
    client, commands = watched_client(infra.mongodb_url)
    try:
        audit = await open_audit(client[db.name], tmp_path)
        commands.clear()
        yield audit, commands
    finally:
        await client.close()


def append_of(audit: Audit, event: events_pb2.AppealEvent) -> Append:
    recorded = records.from_lifecycle_event(
        event, topic=topics.APPEAL_LIFECYCLE.name, secrets=audit.secrets
    )
    return Append(recorded.event, records.index_facts(event))


async def logged_event_ids(db: store.Database) -> dict[int, str]:
    found = await db[AUDIT_LOG].find({}, {"event_id": 1}).to_list()
    return {int(document["_id"]): str(document["event_id"]) for document in found}


async def test_the_consumer_writes_many_events_per_insert_each_once_and_in_order(
    infra: Infrastructure, producer: EventProducer, watched: tuple[Audit, CommandLog]
) -> None:
    audit, commands = watched
    appeals = [new_appeal_id() for _ in range(40)]
    published = {appeal: lifecycle(appeal) for appeal in appeals}
    runner = audit_consumer(
        name="audit-test",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"audit-{uuid.uuid4().hex[:8]}",
        service=audit.service,
        secrets=audit.secrets,
        producer=producer,
    )
    # Each appeal's events in order, all appeals side by side; every appeal's routed event is
    # delivered twice (a producer retry), before its last event, so once that last one is logged
    # the copy has been handled.
    for step in range(5):
        await asyncio.gather(
            *(producer.publish(topics.APPEAL_LIFECYCLE, published[a][step]) for a in appeals)
        )
        if step == 3:
            await asyncio.gather(
                *(producer.publish(topics.APPEAL_LIFECYCLE, published[a][1]) for a in appeals)
            )
    running = asyncio.create_task(runner.run())
    try:
        for appeal in appeals:
            await wait_for_entries(audit, appeal, 5)
    finally:
        await runner.stop()
        await running

    # (The topic may also hold other tests' events: this group reads it from the start.)
    logged = await logged_event_ids(audit.db)
    mine = [event.event_id for events in published.values() for event in events]
    counted = Counter(logged.values())
    assert [counted[event_id] for event_id in mine] == [1] * len(mine)  # the copies: no entry
    assert sorted(logged) == list(range(len(logged)))  # contiguous from 0
    slot_of = {event_id: slot for slot, event_id in logged.items()}
    for appeal, events in published.items():
        slots = [slot_of[event.event_id] for event in events]
        assert slots == sorted(slots), f"{appeal} out of order"
    inserts = commands.on(AUDIT_LOG, "insert")
    assert sum(c.inserted for c in inserts) >= len(logged)
    assert len(inserts) < len(logged) / 2, "events handed over together share a write"
    assert (await audit.service.integrity.verify()).ok


async def wait_for_entries(audit: Audit, appeal_id: str, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        appeal = await audit.service.log.appeal(appeal_id)
        if appeal is not None and len(appeal["entries"]) >= count:
            return
        assert asyncio.get_running_loop().time() < deadline, "the audit consumer fell behind"
        await asyncio.sleep(0.1)


async def test_a_batch_with_redelivered_and_repeated_events_keeps_one_entry_each(
    audit: Audit,
) -> None:
    first, second = new_appeal_id(), new_appeal_id()
    mine = lifecycle(first)
    await record(audit, *mine[:2])  # slots 0 and 1
    theirs = lifecycle(second)
    batch = [
        append_of(audit, theirs[0]),
        append_of(audit, mine[0]),  # redelivered: logged at 0
        append_of(audit, theirs[1]),
        append_of(audit, theirs[0]),  # handed over twice in this very batch
        append_of(audit, mine[1]),  # redelivered: logged at 1
        append_of(audit, mine[2]),
    ]

    outcomes = await audit.service.appender.write(batch)

    assert outcomes == [
        Appended(2, new=True),
        Appended(0, new=False),
        Appended(3, new=True),
        Appended(2, new=False),
        Appended(1, new=False),
        Appended(4, new=True),
    ]
    logged = await logged_event_ids(audit.db)
    assert logged == {
        0: mine[0].event_id,
        1: mine[1].event_id,
        2: theirs[0].event_id,
        3: theirs[1].event_id,
        4: mine[2].event_id,
    }
    trail = await audit.service.trail(first)
    assert [e.document["type"] for e in trail.entries] == ["submitted", "routed", "claimed"]
    assert (await audit.service.integrity.verify()).ok


@pytest.fixture
async def audit(db: store.Database, tmp_path: Path) -> Audit:
    return await open_audit(db, tmp_path)


async def test_an_entry_whose_slot_and_index_a_crash_left_unwritten_is_mended_on_redelivery(
    audit: Audit, tmp_path: Path
) -> None:
    appeal_id = new_appeal_id()
    submitted, routed, *_ = lifecycle(appeal_id)
    await record(audit, submitted, routed)
    # As if the delivery of `routed` had stopped right after its entry was inserted, and the
    # instance had crashed (the one that handles the redelivery remembers nothing).
    await audit.db[EVENT_SLOTS].delete_one({"_id": routed.event_id})
    assert (await audit.db[APPEAL_ENTRIES].delete_one({"_id": f"{appeal_id}/1"})).deleted_count
    restarted = await open_audit(audit.db, tmp_path)
    assert await restarted.service.log.find_event(routed.event_id) is None
    index = await restarted.service.log.appeal(appeal_id)
    assert index is not None and index["slots"] == [0] and "queues" not in index

    again = records.from_lifecycle_event(routed, topic="t", secrets=audit.secrets)
    appended = await restarted.service.record(again, records.index_facts(routed))

    assert appended is False  # logged before: no second entry
    found = await audit.service.log.find_event(routed.event_id)
    assert found is not None and found["index"] == 1
    trail = await audit.service.trail(appeal_id)
    assert [e.document["type"] for e in trail.entries] == ["submitted", "routed"]
    assert trail.summary["queues"] == ["instagram.de"]
    assert await audit.db[AUDIT_LOG].count_documents({}) == 2


async def test_two_instances_appending_in_batches_keep_one_contiguous_log(
    infra: Infrastructure, db: store.Database, audit: Audit, tmp_path: Path
) -> None:
    other_client = store.create_client(infra.mongodb_url, app_name="tests-second-appender")
    second = await open_audit(other_client[db.name], tmp_path)
    appeals = [new_appeal_id() for _ in range(30)]
    events = {appeal: lifecycle(appeal) for appeal in appeals}

    async def deliver(side: Audit, appeal: str) -> list[bool]:
        # One appeal's events one after another, as the consumer runner hands them over;
        # both instances get every appeal (a rebalance delivering everything twice).
        appended = []
        for event in events[appeal]:
            recorded = records.from_lifecycle_event(event, topic="t", secrets=side.secrets)
            appended.append(await side.service.record(recorded, records.index_facts(event)))
        return appended

    try:
        outcomes = await asyncio.gather(
            *(deliver(audit, appeal) for appeal in appeals),
            *(deliver(second, appeal) for appeal in reversed(appeals)),
        )
    finally:
        await other_client.close()

    total = 5 * len(appeals)
    assert sum(sum(one) for one in outcomes) == total  # each event new to exactly one of them
    logged = await logged_event_ids(db)
    assert sorted(logged) == list(range(total))
    assert len(set(logged.values())) == total
    slot_of = {event_id: slot for slot, event_id in logged.items()}
    for appeal in appeals:
        slots = [slot_of[event.event_id] for event in events[appeal]]
        assert slots == sorted(slots)
        indexed = await audit.service.log.appeal(appeal)
        assert indexed is not None
        assert [e["index"] for e in indexed["entries"]] == slots
    assert (await audit.service.integrity.verify()).ok


async def test_an_appeal_indexed_by_turns_on_two_instances_lists_every_entry_once(
    infra: Infrastructure, db: store.Database, audit: Audit, tmp_path: Path
) -> None:
    # Each instance remembers the positions it wrote; the other one takes the next position
    # meanwhile (a rebalance moved the appeal), so what the first remembers is stale.
    other_client = store.create_client(infra.mongodb_url, app_name="tests-second-indexer")
    second = await open_audit(other_client[db.name], tmp_path)
    appeal_id = new_appeal_id()
    events = lifecycle(appeal_id)
    try:
        for n, event in enumerate(events):
            await record(audit if n % 2 == 0 else second, event)
        await record(second, events[2])  # redelivered where the other instance logged it
        await record(audit, events[1])
    finally:
        await other_client.close()

    indexed = await audit.service.log.appeal(appeal_id)
    assert indexed is not None
    assert [e["type"] for e in indexed["entries"]] == [
        "submitted", "routed", "claimed", "decided", "notified"
    ]  # fmt: skip
    assert indexed["slots"] == [0, 1, 2, 3, 4]
    positions = await db[APPEAL_ENTRIES].find({"appeal_id": appeal_id}, {"_id": 1}).to_list()
    assert sorted(str(p["_id"]) for p in positions) == [f"{appeal_id}/{n}" for n in range(5)]


async def test_a_new_appeal_is_indexed_without_a_read_and_a_redelivery_still_only_once(
    watched: tuple[Audit, CommandLog], tmp_path: Path
) -> None:
    """An appeal whose first entry is its submitted event has nothing indexed before it: no read
    of its positions. A restarted instance assuming the same of a redelivered submitted event
    finds position 0 taken, reads the appeal and indexes nothing twice."""
    audit, commands = watched
    appeal_id = new_appeal_id()
    submitted, routed, *_ = lifecycle(appeal_id)
    await record(audit, submitted, routed)
    assert commands.on(APPEAL_ENTRIES, "find") == []

    restarted = await open_audit(audit.db, tmp_path)
    await record(restarted, submitted)  # redelivered after a restart
    await restarted.service.appender.write([append_of(restarted, submitted)])  # and again
    indexed = await audit.service.log.appeal(appeal_id)
    assert indexed is not None and indexed["slots"] == [0, 1]
    assert [e["type"] for e in indexed["entries"]] == ["submitted", "routed"]

    # Another appeal's routed event was indexed before its submitted event (out of order, on
    # another instance): a batch with both places the submitted one after it and nothing twice.
    other = new_appeal_id()
    submitted, routed, *_ = lifecycle(other)
    await record(audit, routed)
    third = await open_audit(audit.db, tmp_path)
    await third.service.appender.write([append_of(third, submitted), append_of(third, routed)])
    positions = await audit.db[APPEAL_ENTRIES].find({"appeal_id": other}).to_list()
    assert sorted((str(p["_id"]), p["type"]) for p in positions) == [
        (f"{other}/0", "routed"), (f"{other}/1", "submitted")
    ]  # fmt: skip


async def test_entries_are_hashed_as_stored_by_the_batch_write(audit: Audit) -> None:
    appeal_id = new_appeal_id()
    await asyncio.gather(
        *(
            audit.service.record(
                records.from_lifecycle_event(e, topic="t", secrets=audit.secrets),
                records.index_facts(e),
            )
            for e in (lifecycle(appeal_id)[0], *lifecycle(new_appeal_id()))
        )
    )
    for document in await audit.db[AUDIT_LOG].find({}).to_list():
        assert entries.entry_leaf_hash(document).hex() == document["leaf_hash"]
        assert document["_id"] == entries.entry_key(document["index"])
