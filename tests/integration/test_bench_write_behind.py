"""Seeding's write-behind database against the real store: the code it wraps reads its own
writes, and what it stores is what the unwrapped calls would have stored."""

from __future__ import annotations

import pytest

from appeals_runtime import store
from bench.seeding.write_behind import WriteBehind

pytestmark = pytest.mark.integration


async def test_buffered_inserts_and_updates_are_stored_before_any_read(
    db: store.Database,
) -> None:
    writer = WriteBehind(db, batch=3)
    items = writer["items"]
    for n in range(5):
        await items.insert_one({"_id": f"item-{n}", "n": n})
    statements = [
        {"q": {"_id": "ap_1", "slots": {"$ne": n}}, "u": {"$push": {"slots": n}}, "upsert": True}
        for n in (1, 2, 2)
    ]
    reply = await writer.command({"update": "appeals", "updates": statements, "ordered": True})
    assert reply["ok"] == 1.0
    assert writer.applied_in_memory == 3
    assert await db["appeals"].find_one({"_id": "ap_1"}) is None  # still in memory

    found = await items.find({}).sort("_id", 1).to_list()  # a read stores its collection first
    assert [document["n"] for document in found] == [0, 1, 2, 3, 4]
    assert await writer["appeals"].find_one({"_id": "ap_1"}) == {"_id": "ap_1", "slots": [1, 2]}


async def test_a_statement_about_a_stored_document_goes_to_the_store(db: store.Database) -> None:
    await db["appeals"].insert_one({"_id": "ap_9", "slots": [1]})
    writer = WriteBehind(db)
    statement = {"q": {"_id": "ap_9"}, "u": {"$push": {"slots": 2}}, "upsert": False}
    await writer.command({"update": "appeals", "updates": [statement]})
    assert writer.applied_in_memory == 0
    assert await db["appeals"].find_one({"_id": "ap_9"}) == {"_id": "ap_9", "slots": [1, 2]}


async def test_duplicates_in_a_batch_are_counted_not_raised(db: store.Database) -> None:
    await db["items"].insert_one({"_id": "taken"})
    writer = WriteBehind(db)
    await writer["items"].insert_one({"_id": "taken"})
    await writer["items"].insert_one({"_id": "free"})
    await writer.flush()
    assert writer.duplicates["items"] == 1
    assert await db["items"].count_documents({}) == 2
