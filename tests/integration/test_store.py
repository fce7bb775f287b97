"""The document store primitives against the real FerretDB."""

from __future__ import annotations

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
