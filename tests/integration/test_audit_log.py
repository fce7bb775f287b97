"""The audit log against the real broker and store: once per event, in order, tamper-evident,
personal data sealed and shreddable."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appeals import events, topics
from appeals.v1 import appeal_pb2, commands_pb2, events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.kafka.producer import EventProducer
from services.audit.consumer import audit_consumer
from services.audit.log import entries, integrity, records
from services.audit.log.integrity import IntegrityError
from services.audit.log.repository import AUDIT_LOG
from services.audit.log.tree_repository import AUDIT_CHECKPOINTS
from services.audit.privacy import sealing
from tests.support.audit import (
    Audit,
    Case,
    lifecycle,
    new_appeal_id,
    open_audit,
    record,
)

pytestmark = pytest.mark.integration

RESTORE_TOPIC = topics.restore_commands_topic(appeal_pb2.PLATFORM_FACEBOOK)


@pytest.fixture
async def audit(db: store.Database, tmp_path: Path) -> Audit:
    return await open_audit(db, tmp_path)


def restore_command(decided: events_pb2.AppealEvent) -> commands_pb2.RestoreCommand:
    command = commands_pb2.RestoreCommand(
        command_id=events.derived_event_id(decided.event_id, "restore"),
        appeal_id=decided.appeal_id,
        causation_id=decided.event_id,
        platform=appeal_pb2.PLATFORM_FACEBOOK,
    )
    command.issued_at.GetCurrentTime()
    return command


async def wait_for_trail(audit: Audit, appeal_id: str, *, entries: int) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        appeal = await audit.service.log.appeal(appeal_id)
        if appeal is not None and len(appeal["entries"]) >= entries:
            return
        assert asyncio.get_running_loop().time() < deadline, "the audit consumer fell behind"
        await asyncio.sleep(0.1)


async def test_the_consumer_logs_each_event_once_in_order_with_personal_data_sealed(
    infra: Infrastructure, producer: EventProducer, audit: Audit
) -> None:
    appeal_id = new_appeal_id()
    # From a producer not yet upgraded: today's events have no personal data to seal.
    submitted, routed, claimed, decided, notified = lifecycle(appeal_id, Case(old_layout=True))
    restore = restore_command(decided)
    runner = audit_consumer(
        name="audit-test",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"audit-{uuid.uuid4().hex[:8]}",
        service=audit.service,
        secrets=audit.secrets,
        producer=producer,
    )
    running = asyncio.create_task(runner.run())
    try:
        # routed is delivered twice, as after a producer retry or a consumer crash; notified
        # shares the partition and comes after it, so once notified is logged the copy was seen.
        for event in (submitted, routed, claimed, routed, decided):
            await producer.publish(topics.APPEAL_LIFECYCLE, event)
        await producer.publish(RESTORE_TOPIC, restore)
        await producer.publish(RESTORE_TOPIC, restore)
        # Another command after the copy, on its partition (same key): once it is logged, the
        # copy was seen too, as notified shows for routed's (no fixed sleep to outwait).
        sentinel = restore_command(decided)
        sentinel.command_id = events.derived_event_id(decided.event_id, "restore-again")
        await producer.publish(RESTORE_TOPIC, sentinel)
        await producer.publish(topics.APPEAL_LIFECYCLE, notified)
        await wait_for_trail(audit, appeal_id, entries=7)
    finally:
        await runner.stop()
        await running

    trail = await audit.service.trail(appeal_id)
    kinds = [e.document["type"] for e in trail.entries]
    assert [k for k in kinds if k != records.RESTORE_REQUESTED] == [
        "submitted",
        "routed",
        "claimed",
        "decided",
        "notified",
    ]
    assert Counter(e.document["event_id"] for e in trail.entries) == Counter(
        [e.event_id for e in (submitted, routed, claimed, decided, notified)]
        + [restore.command_id, sentinel.command_id]
    )
    restore_entry = next(e for e in trail.entries if e.document["type"] == "restore_requested")
    assert restore_entry.document["producer"] == "tests"  # from the record's producer header

    # The submitted entry names the appellant by pseudonym only; the rest is sealed for them.
    first = next(e.document for e in trail.entries if e.document["type"] == "submitted")
    assert b"17841400000000001" not in base64.b64decode(first["payload"])
    assert "17841400000000001" not in str(first)
    personal = await audit.service.personal_data(first)
    assert b"17841400000000001@example.org" in personal

    assert (await audit.service.integrity.verify()).ok


# Tampering straight in the store, each undone so one log serves every case -----------------


@dataclass(frozen=True)
class Tampering:
    name: str
    # Tampers with the log (entries given by index); returns how to undo it.
    apply: Callable[[store.Collection, int], Awaitable[Callable[[], Awaitable[None]]]]
    problem: str


async def _snapshot(log: store.Collection, *indexes: int) -> Callable[[], Awaitable[None]]:
    originals = [await log.find_one({"_id": entries.entry_key(i)}) for i in indexes]

    async def undo() -> None:
        # All out first: swapped contents would otherwise collide on the unique event id.
        for index in indexes:
            await log.delete_one({"_id": entries.entry_key(index)})
        for original in originals:
            assert original is not None
            await log.insert_one(original)

    return undo


async def edit(log: store.Collection, at: int) -> Callable[[], Awaitable[None]]:
    undo = await _snapshot(log, at)
    await log.update_one({"_id": entries.entry_key(at)}, {"$set": {"appeal_id": "someone-else"}})
    return undo


async def edit_payload(log: store.Collection, at: int) -> Callable[[], Awaitable[None]]:
    undo = await _snapshot(log, at)
    forged = base64.b64encode(b"rewritten").decode()
    await log.update_one({"_id": entries.entry_key(at)}, {"$set": {"payload": forged}})
    return undo


async def delete(log: store.Collection, at: int) -> Callable[[], Awaitable[None]]:
    undo = await _snapshot(log, at)
    await log.delete_one({"_id": entries.entry_key(at)})
    return undo


async def reorder(log: store.Collection, at: int) -> Callable[[], Awaitable[None]]:
    """Swap two entries' contents (hashes included); each keeps its slot. The event id index is
    unique, so one event id is parked while the contents cross over."""
    undo = await _snapshot(log, at, at + 3)
    first = await log.find_one({"_id": entries.entry_key(at)})
    second = await log.find_one({"_id": entries.entry_key(at + 3)})
    assert first is not None
    assert second is not None
    await log.update_one({"_id": entries.entry_key(at)}, {"$set": {"event_id": "parked"}})
    await log.replace_one(
        {"_id": entries.entry_key(at + 3)}, {**first, "_id": entries.entry_key(at + 3)}
    )
    await log.replace_one({"_id": entries.entry_key(at)}, {**second, "_id": entries.entry_key(at)})
    return undo


async def truncate(log: store.Collection, at: int) -> Callable[[], Awaitable[None]]:
    """Everything from ``at`` on deleted: no gap is left, only the checkpoint can tell."""
    size = await log.count_documents({})
    undo = await _snapshot(log, *range(at, size))
    for index in range(at, size):
        await log.delete_one({"_id": entries.entry_key(index)})
    return undo


async def rewrite_and_rehash(log: store.Collection, at: int) -> Callable[[], Awaitable[None]]:
    undo = await _snapshot(log, at)
    document = await log.find_one({"_id": entries.entry_key(at)})
    assert document is not None
    document["producer"] = "someone-else"
    document["leaf_hash"] = entries.entry_leaf_hash(document).hex()
    await log.replace_one({"_id": entries.entry_key(at)}, document)
    return undo


TAMPERINGS = [
    Tampering("appeal id edited", edit, "hash mismatch"),
    Tampering("payload edited", edit_payload, "hash mismatch"),
    Tampering("entry deleted", delete, "missing entry"),
    Tampering("entries reordered", reorder, "entry out of place"),
    Tampering("tail truncated", truncate, "truncated"),
]


@pytest.mark.parametrize("at", [0, 6, 11])
async def test_tampering_in_the_store_is_found_at_its_index_and_an_intact_log_raises_no_alarm(
    audit: Audit, at: int
) -> None:
    for _ in range(3):
        await record(audit, *lifecycle(new_appeal_id()))  # 15 entries
    await audit.service.integrity.checkpoint()
    log = audit.db[AUDIT_LOG]
    intact = await audit.service.integrity.verify()
    assert intact.ok, intact
    assert (intact.entries, intact.checkpoint_size, intact.problems) == (15, 15, 0)

    for tampering in TAMPERINGS:
        undo = await tampering.apply(log, at)
        found = await audit.service.integrity.verify()
        assert (found.ok, found.first_bad_index, found.problem) == (
            False,
            at,
            tampering.problem,
        ), f"{tampering.name}: {found}"
        await undo()
        assert await audit.service.integrity.verify() == intact, f"undoing {tampering.name}"


async def test_a_rehashed_rewrite_is_located_by_the_stored_subtrees(audit: Audit) -> None:
    for _ in range(4):
        await record(audit, *lifecycle(new_appeal_id()))  # 20 entries
    await audit.service.integrity.checkpoint()
    await rewrite_and_rehash(audit.db[AUDIT_LOG], 13)

    found = await audit.service.integrity.verify()

    assert (found.ok, found.first_bad_index, found.problem) == (False, 12, "checkpoint mismatch")
    assert "[12, 14)" in (found.detail or "")
    # The next checkpoint extends the signed (honest) tree from its stored frontier: it does not
    # take the rewrite in, so the rewrite stays visible.
    await record(audit, *lifecycle(new_appeal_id()))
    later = await audit.service.integrity.checkpoint()
    assert later.size == 25
    again = await audit.service.integrity.verify()
    assert (again.first_bad_index, again.problem) == (12, "checkpoint mismatch")


async def test_truncation_is_caught_by_the_checkpoint_files_when_the_store_loses_its_own(
    audit: Audit,
) -> None:
    for _ in range(2):
        await record(audit, *lifecycle(new_appeal_id()))
    await audit.service.integrity.checkpoint()
    log = audit.db[AUDIT_LOG]
    await truncate(log, 7)
    await audit.db[AUDIT_CHECKPOINTS].delete_many({})  # the tamperer covers their tracks

    found = await audit.service.integrity.verify()

    assert (found.first_bad_index, found.problem, found.checkpoint_size) == (7, "truncated", 10)
    with pytest.raises(IntegrityError, match="deleted"):
        await audit.service.integrity.checkpoint()


async def test_a_checkpoint_extends_the_last_one_and_is_written_outside_the_store(
    audit: Audit,
) -> None:
    await record(audit, *lifecycle(new_appeal_id()))
    first = await audit.service.integrity.checkpoint()
    again = await audit.service.integrity.checkpoint()
    await record(audit, *lifecycle(new_appeal_id()))
    second = await audit.service.integrity.checkpoint()

    assert first == again
    assert (first.size, second.size) == (5, 10)
    directory = audit.settings.checkpoint_dir
    assert (directory / "checkpoint").read_text() == second.note
    assert (directory / "000000000005.checkpoint").read_text() == first.note
    assert second.note.startswith(f"{audit.settings.origin}\n10\n")
    assert second.root == await audit.service.tree.root(10)


async def test_a_checkpoint_over_many_entries_integrates_them_a_chunk_at_a_time(
    audit: Audit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries are read and hashed in chunks (so appends go on in between); chunks that do not
    divide the new entries evenly still give the root of the whole tree."""
    monkeypatch.setattr(integrity, "CHECKPOINT_CHUNK", 7)
    await record(audit, *lifecycle(new_appeal_id()))
    first = await audit.service.integrity.checkpoint()
    for _ in range(5):
        await record(audit, *lifecycle(new_appeal_id()))
    second = await audit.service.integrity.checkpoint()

    assert (first.size, second.size) == (5, 30)
    assert second.root == await audit.service.tree.root(30)
    verified = await audit.service.integrity.verify()  # recomputed from the entries alone
    assert verified.ok and verified.root_hash == second.root.hex(), verified


async def test_two_appenders_racing_for_the_tail_keep_one_contiguous_log(
    infra: Infrastructure, db: store.Database, audit: Audit, tmp_path: Path
) -> None:
    other_client = store.create_client(infra.mongodb_url, app_name="tests-second-appender")
    second = await open_audit(other_client[db.name], tmp_path)
    appeals = [new_appeal_id() for _ in range(6)]
    all_events = [event for appeal in appeals for event in lifecycle(appeal)]
    # Both instances see a third of the events as well: redelivery racing the first delivery.
    shared = all_events[::3]
    first_share = all_events[: len(all_events) // 2] + shared
    second_share = all_events[len(all_events) // 2 :] + shared

    def recorded(event: events_pb2.AppealEvent, side: Audit) -> records.Recorded:
        return records.from_lifecycle_event(event, topic="t", secrets=side.secrets)

    try:
        outcomes = await asyncio.gather(
            *(
                audit.service.record(recorded(e, audit), records.index_facts(e))
                for e in first_share
            ),
            *(
                second.service.record(recorded(e, second), records.index_facts(e))
                for e in second_share
            ),
        )
    finally:
        await other_client.close()

    assert sum(outcomes) == len(all_events)  # every event appended by exactly one of them
    verified = await audit.service.integrity.verify()
    assert (verified.ok, verified.entries) == (True, len(all_events))
    stored = await db[AUDIT_LOG].find({}, {"event_id": 1}).to_list()
    assert sorted(d["_id"] for d in stored) == [
        entries.entry_key(i) for i in range(len(all_events))
    ]
    for appeal in appeals:
        indexed = await audit.service.log.appeal(appeal)
        assert indexed is not None and len(indexed["entries"]) == 5


async def test_crypto_shredding_erases_a_persons_data_and_the_log_still_verifies(
    audit: Audit,
) -> None:
    # Entries that hold sealed personal data come from events in the old layout.
    mine, theirs = new_appeal_id(), new_appeal_id()
    await record(audit, *lifecycle(mine, Case(user_id="lena", old_layout=True)))
    await record(audit, *lifecycle(theirs, Case(user_id="omar", old_layout=True)))
    await audit.service.integrity.checkpoint()
    submitted = (await audit.service.trail(mine)).entries[0].document
    subject = submitted["sealed"]["subject"]
    assert subject == sealing.pseudonym(audit.secrets, platform=2, user_id="lena")
    assert b"lena@example.org" in await audit.service.personal_data(submitted)

    reader = _operator()
    assert await audit.service.forget(subject, reader)

    with pytest.raises(sealing.Erased):
        await audit.service.personal_data(submitted)
    other = (await audit.service.trail(theirs)).entries[0].document
    assert b"omar@example.org" in await audit.service.personal_data(other)  # only hers is gone
    verified = await audit.service.integrity.verify()
    assert verified.ok, verified
    # The erasure is itself on the record, naming only the pseudonym.
    erasures = await audit.db[AUDIT_LOG].find({"type": "erasure"}).to_list()
    assert [base64.b64decode(e["payload"]).decode().count(subject) for e in erasures] == [1]
    # A new appeal by the same person is logged without sealing anything for her again.
    later = new_appeal_id()
    await record(audit, *lifecycle(later, Case(user_id="lena", old_layout=True)))
    assert "sealed" not in (await audit.service.trail(later)).entries[0].document
    assert await audit.service.keys.key(subject) is None


def _operator() -> Any:
    from services.audit.service import Reader

    return Reader("ops-privacy", "ops")
