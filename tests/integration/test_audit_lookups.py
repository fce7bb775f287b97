"""What the audit service asks the real store: every per-event, per-request and periodic query
names the ``_id`` (FerretDB's only index for reads), checkpoints read what was appended since the
last and write nothing when nothing was, query pages walk a bounded stretch of the log, and an
appeal index of an earlier shape is folded into today's once."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from appeals.v1 import events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from services.audit.log import records, repository
from services.audit.log.appeal_index import APPEAL_ENTRIES
from services.audit.log.appender import Appender
from services.audit.log.records import AppealSummary
from services.audit.log.repository import (
    AUDIT_LOG,
    EVENT_SLOTS,
    LEGACY_APPEAL_INDEX,
    LEGACY_APPEALS,
)
from services.audit.log.tree_repository import AUDIT_CHECKPOINTS, LATEST
from services.audit.service import Reader
from tests.support.audit import Audit, Case, lifecycle, new_appeal_id, open_audit, record
from tests.support.store_commands import CommandLog, names_the_id, watched_client

pytestmark = pytest.mark.integration

OPS = Reader("ops-1", "ops")


@pytest.fixture
async def watched(
    infra: Infrastructure, db: store.Database, tmp_path: Path
) -> AsyncIterator[tuple[Audit, CommandLog]]:
    client, commands = watched_client(infra.mongodb_url)
    try:
        audit = await open_audit(client[db.name], tmp_path)
        await audit.service.upgrade_store()  # what the service does at start
        commands.clear()
        yield audit, commands
    finally:
        await client.close()


async def record_side_by_side(audit: Audit, appeals: list[str]) -> None:
    """Each appeal's lifecycle in order, the appeals side by side (as the consumer does)."""

    async def one(appeal: str) -> None:
        await record(audit, *lifecycle(appeal))

    await asyncio.gather(*(one(appeal) for appeal in appeals))


async def test_every_query_of_the_hot_path_names_the_id(
    watched: tuple[Audit, CommandLog],
) -> None:
    audit, commands = watched
    service = audit.service
    appeals = [new_appeal_id() for _ in range(8)]
    await record_side_by_side(audit, appeals)
    await record(audit, *lifecycle(appeals[0]))  # redelivered
    await service.integrity.checkpoint()
    await record_side_by_side(audit, [new_appeal_id()])
    await service.integrity.checkpoint()
    await service.integrity.checkpoint()  # nothing new

    first = lifecycle(appeals[1])
    for reader_action in ("trail", "ops search"):
        await service.log_access(OPS, reader_action, appeals[1])
        await service.trail(appeals[1])
    assert await service.log.find_event(first[2].event_id) is not None
    await service.inclusion_bundle(event_id=first[3].event_id)
    page = await service.log.query_appeals(platform="instagram", limit=3)
    await service.log.query_appeals(platform="instagram", after=page.next_cursor, limit=3)
    await service.log.query_appeals(since=datetime.now(UTC) - timedelta(hours=1), limit=3)
    await service.consistency_bundle(40)

    selecting = list(commands.selecting())
    assert selecting, "the commands were recorded"
    scans = [(c.name, c.collection, q) for c, q in selecting if not names_the_id(q)]
    assert scans == [], "a hot-path query that FerretDB answers by scanning the collection"


def requested_slots(commands: CommandLog) -> int:
    """How many log entries the recorded finds asked for by ``_id``."""
    total = 0
    for command in commands.on(AUDIT_LOG, "find"):
        for query in command.filters:
            key = query["_id"]
            total += len(key["$in"]) if isinstance(key, dict) else 1
    return total


async def test_a_checkpoint_reads_what_was_appended_since_the_last_one_and_no_more(
    watched: tuple[Audit, CommandLog],
) -> None:
    audit, commands = watched
    await record_side_by_side(audit, [new_appeal_id() for _ in range(12)])  # 60 entries
    await audit.service.integrity.checkpoint()
    await record(audit, *lifecycle(new_appeal_id())[:4])
    commands.clear()

    signed = await audit.service.integrity.checkpoint()

    assert signed.size == 64
    # The 4 new entries, and a few lookups by _id to find the tail and check the last signed
    # entry; nothing that grows with the 60 already signed beyond a logarithm.
    assert requested_slots(commands) <= 4 + 2 * math.ceil(math.log2(64)) + 2


async def test_signing_again_without_new_entries_writes_nothing(
    watched: tuple[Audit, CommandLog],
) -> None:
    audit, commands = watched
    await record(audit, *lifecycle(new_appeal_id()))
    signed = await audit.service.integrity.checkpoint()
    files = sorted(audit.settings.checkpoint_dir.iterdir())
    written = {path.name: path.stat().st_mtime_ns for path in files}
    commands.clear()

    again = await audit.service.integrity.checkpoint()

    assert again == signed
    assert [c for c in commands.commands if c.name in ("insert", "update", "delete")] == []
    assert {p.name: p.stat().st_mtime_ns for p in audit.settings.checkpoint_dir.iterdir()} == (
        written
    )


async def test_a_checkpoint_lost_by_one_side_is_written_to_it_again(audit: Audit) -> None:
    await record(audit, *lifecycle(new_appeal_id()))
    signed = await audit.service.integrity.checkpoint()
    await audit.db[AUDIT_CHECKPOINTS].delete_many({})

    again = await audit.service.integrity.checkpoint()

    assert again == signed
    assert await audit.service.tree.latest_note() == signed.note


@pytest.fixture
async def audit(db: store.Database, tmp_path: Path) -> Audit:
    return await open_audit(db, tmp_path)


async def test_query_pages_walk_a_bounded_stretch_and_together_find_every_appeal_once(
    audit: Audit, monkeypatch: pytest.MonkeyPatch
) -> None:
    appeals = [new_appeal_id() for _ in range(8)]
    for appeal in appeals:
        await record(audit, *lifecycle(appeal))  # 40 entries, an appeal every 5 slots
    monkeypatch.setattr(repository, "QUERY_WALK_LIMIT", 7)

    found: list[str] = []
    pages = 0
    cursor: int | None = None
    while True:
        page = await audit.service.log.query_appeals(platform="instagram", after=cursor, limit=50)
        pages += 1
        found += [document["appeal_id"] for document in page.appeals]
        if page.next_cursor is None:
            break
        assert cursor is None or page.next_cursor > cursor
        cursor = page.next_cursor

    assert found == appeals
    assert pages == math.ceil(40 / 7)


async def test_a_query_from_a_time_starts_where_that_time_was_recorded(audit: Audit) -> None:
    day = datetime(2025, 3, 1, tzinfo=UTC)
    clock = {"now": day}
    audit.service.appender = Appender(audit.service.log, clock=lambda: clock["now"])
    appeals = []
    for n in range(4):
        clock["now"] = day + timedelta(days=n)
        appeals.append(new_appeal_id())
        await record(audit, *lifecycle(appeals[-1], start=day + timedelta(days=n)))

    since_third = await audit.service.log.query_appeals(since=day + timedelta(days=2))
    between = await audit.service.log.query_appeals(
        since=day + timedelta(days=1), until=day + timedelta(days=3)
    )

    assert [d["appeal_id"] for d in since_third.appeals] == appeals[2:]
    assert [d["appeal_id"] for d in between.appeals] == appeals[1:3]
    assert since_third.next_cursor is None


def summary_of(events: list[events_pb2.AppealEvent], first_index: int) -> AppealSummary:
    summary = AppealSummary.starting(records.index_facts(events[0]), first_index)
    for event in events[1:]:
        summary = summary.then(records.index_facts(event), first_index)
    return summary


def stored_summary(document: dict[str, Any]) -> AppealSummary:
    return AppealSummary(
        first_index=document["first_index"],
        platform=document.get("platform"),
        queues=tuple(document.get("queues") or ()),
        outcome=document.get("outcome"),
        submitted_at=document.get("submitted_at"),
        decided_at=document.get("decided_at"),
    )


async def test_an_appeals_document_holds_its_summary_as_the_summary_rule_folds_it(
    audit: Audit,
) -> None:
    appeal_id = new_appeal_id()
    start = store.stored_time(datetime.now(UTC))  # what a BSON date keeps
    events = lifecycle(appeal_id, Case(queue="instagram.de"), start=start)
    transferred = events_pb2.AppealEvent()
    transferred.CopyFrom(events[2])
    transferred.event_id = "transfer-1"
    transferred.transferred.to_queue = "instagram.senior"
    await record(audit, *events[:3], transferred, *events[3:])

    document = await audit.service.log.appeal(appeal_id)

    assert document is not None
    assert stored_summary(document) == summary_of([*events[:3], transferred, *events[3:]], 0)
    assert document["queues"] == ["instagram.de", "instagram.senior"]
    assert [e["type"] for e in document["entries"]] == [
        "submitted", "routed", "claimed", "transferred", "decided", "notified"
    ]  # fmt: skip


async def make_legacy(audit: Audit, appeal_id: str) -> None:
    """Turn the appeal's document back into the per-entry index of earlier versions (each
    entry's document carrying the summary as of that entry)."""
    document = await audit.service.log.appeal(appeal_id)
    assert document is not None
    trail = await audit.service.trail(appeal_id)
    events = [events_pb2.AppealEvent.FromString(_payload(e.document)) for e in trail.entries]
    for n, entry in enumerate(document["entries"]):
        summary = summary_of(events[: n + 1], document["first_index"])
        await audit.db[LEGACY_APPEAL_INDEX].insert_one(
            {
                "_id": f"{appeal_id}/{entry['event_id']}",
                "appeal_id": appeal_id,
                "event_id": entry["event_id"],
                "index": entry["index"],
                "type": entry["type"],
                "first_index": summary.first_index,
                "platform": summary.platform,
                "queues": list(summary.queues),
                "outcome": summary.outcome,
                "submitted_at": summary.submitted_at,
                "decided_at": summary.decided_at,
                "trace_id": entry["trace_id"],
            }
        )


def _payload(document: dict[str, Any]) -> bytes:
    from services.audit.log import entries

    return entries.payload_of(document)


async def test_the_appeal_index_of_earlier_versions_is_folded_in_once(audit: Audit) -> None:
    appeals = [new_appeal_id(), new_appeal_id()]
    await record(audit, *lifecycle(appeals[0]), *lifecycle(appeals[1]))
    await audit.service.integrity.checkpoint()
    before = {appeal: await audit.service.log.appeal(appeal) for appeal in appeals}
    for appeal in appeals:
        await make_legacy(audit, appeal)
    for collection in (APPEAL_ENTRIES, EVENT_SLOTS):
        await audit.db[collection].drop()
    await audit.db[AUDIT_CHECKPOINTS].delete_one({"_id": LATEST})

    await audit.service.upgrade_store()
    await audit.service.upgrade_store()  # a second start: nothing left to do

    assert LEGACY_APPEAL_INDEX not in await audit.db.list_collection_names()
    for appeal in appeals:
        assert await audit.service.log.appeal(appeal) == before[appeal]
    some_event = lifecycle(appeals[1])[3].event_id
    found = await audit.service.log.find_event(some_event)
    assert found is not None and found["index"] == 8
    assert (await audit.service.trail(appeals[0])).checkpoint is not None  # the pointer is back


async def test_the_appeal_documents_of_the_version_before_move_into_the_entry_index_once(
    audit: Audit,
) -> None:
    appeals = [new_appeal_id(), new_appeal_id()]
    case = Case(queue="instagram.de")
    start = store.stored_time(datetime.now(UTC))  # what a BSON date keeps
    events = {appeal: lifecycle(appeal, case, start=start) for appeal in appeals}
    # The first appeal is decided before the upgrade, the second only after it.
    await record(audit, *events[appeals[0]], *events[appeals[1]][:3])
    before: dict[str, dict[str, Any]] = {}
    for appeal in appeals:
        found = await audit.service.log.appeal(appeal)
        assert found is not None
        before[appeal] = found
        # Its document of the version before had exactly the shape a lookup answers today.
        await audit.db[LEGACY_APPEALS].insert_one(dict(found))
    await audit.db[APPEAL_ENTRIES].drop()
    assert await audit.service.log.appeal(appeals[0]) is None

    await audit.service.upgrade_store()
    await audit.service.upgrade_store()  # a second start: nothing left to do

    assert LEGACY_APPEALS not in await audit.db.list_collection_names()
    for appeal in appeals:
        assert await audit.service.log.appeal(appeal) == before[appeal]
    await record(audit, *events[appeals[1]][3:])
    after = await audit.service.log.appeal(appeals[1])
    assert after is not None
    first_index = before[appeals[1]]["first_index"]
    assert stored_summary(after) == summary_of(events[appeals[1]], first_index)
    assert [e["type"] for e in after["entries"]] == [
        "submitted", "routed", "claimed", "decided", "notified"
    ]  # fmt: skip
