"""The document store primitives against the real FerretDB."""

from __future__ import annotations

import asyncio

import pytest

from appeals_runtime import store

pytestmark = pytest.mark.integration


async def test_a_unique_index_turns_a_duplicate_insert_into_a_detectable_no_op(
    db: store.Database,
) -> None:
    await store.ensure_indexes(
        db, [store.IndexSpec("effects", [("appeal_id", 1), ("event_id", 1)], unique=True)]
    )

    first = await store.insert_once(db.effects, {"appeal_id": "a-1", "event_id": "e-1", "n": 1})
    duplicate = await store.insert_once(db.effects, {"appeal_id": "a-1", "event_id": "e-1", "n": 2})
    other = await store.insert_once(db.effects, {"appeal_id": "a-1", "event_id": "e-2", "n": 3})

    assert (first, duplicate, other) == (True, False, True)
    documents = await db.effects.find({}, {"_id": 0}).sort("n", 1).to_list()
    assert documents == [
        {"appeal_id": "a-1", "event_id": "e-1", "n": 1},
        {"appeal_id": "a-1", "event_id": "e-2", "n": 3},
    ]


async def test_ensure_indexes_is_idempotent(db: store.Database) -> None:
    spec = store.IndexSpec("things", [("key", 1)], unique=True)
    await store.ensure_indexes(db, [spec])
    await store.ensure_indexes(db, [spec])
    names = [index["name"] async for index in await db.things.list_indexes()]
    assert spec.index_name in names


def _plan(explained: dict[str, object]) -> list[str]:
    planner = explained["queryPlanner"]
    assert isinstance(planner, dict)
    return [str(step) for step in planner.get("Plan", [])]


async def test_filters_naming_the_id_use_the_id_index_and_keep_their_meaning(
    db: store.Database,
) -> None:
    """The FerretDB build's patch (deploy/local/patches): `_id` lookups are index searches, also
    beside other conditions and as `$in`; any other filter still scans the collection."""
    await db.things.insert_many([{"_id": f"k{i}", "v": i} for i in range(50)])
    by_id = ({"_id": "k5"}, {"_id": "k5", "v": {"$lt": 9}}, {"_id": {"$in": ["k1", "k2"]}})
    for query in by_id:
        plan = _plan(await db.command("explain", {"find": "things", "filter": query}))
        assert any("SEARCH" in step and "USING INDEX" in step for step in plan), (query, plan)
    scan = _plan(await db.command("explain", {"find": "things", "filter": {"v": 5}}))
    assert not any("USING INDEX" in step for step in scan), scan

    assert [d["v"] for d in await db.things.find({"_id": "k5", "v": {"$lt": 9}}).to_list()] == [5]
    assert await db.things.find({"_id": "k5", "v": {"$gt": 9}}).to_list() == []
    found = await db.things.find({"_id": {"$in": ["k1", "k2", "nope"]}}).to_list()
    assert sorted(d["_id"] for d in found) == ["k1", "k2"]
    updated = await db.things.update_one({"_id": "k7", "v": 7}, {"$set": {"v": 70}})
    assert updated.modified_count == 1
    assert (await db.things.find_one({"_id": "k7"}) or {}).get("v") == 70
    assert (await db.things.delete_one({"_id": "k8", "v": 0})).deleted_count == 0
    assert (await db.things.delete_one({"_id": "k8", "v": 8})).deleted_count == 1


async def test_concurrent_updates_of_one_document_are_atomic(db: store.Database) -> None:
    """The FerretDB build's patch: an update reads and writes its document under one lock, as
    MongoDB updates a document atomically, so concurrent conditional updates lose nothing."""
    for trial in range(5):
        await db.counters.insert_one({"_id": f"c{trial}", "n": 0, "by": []})
        results = await asyncio.gather(
            *(
                db.counters.update_one(
                    {"_id": f"c{trial}", "n": {"$lt": 3}, "by": {"$ne": i}},
                    {"$inc": {"n": 1}, "$addToSet": {"by": i}},
                )
                for i in range(8)
            )
        )
        document = await db.counters.find_one({"_id": f"c{trial}"})
        assert document is not None
        assert sum(r.modified_count for r in results) == 3
        assert (document["n"], len(document["by"])) == (3, 3)
