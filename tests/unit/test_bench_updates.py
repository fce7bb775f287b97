"""Seeding applies a repository's update statements in memory (MongoDB's meaning), or declines."""

from __future__ import annotations

from typing import Any

import pytest

from bench.seeding import updates


def _statement(
    query: dict[str, Any], update: dict[str, Any], upsert: bool = True
) -> dict[str, Any]:
    return {"q": query, "u": update, "upsert": upsert}


def test_an_upsert_builds_the_document_from_the_query_and_the_operators() -> None:
    query = {"_id": "ap_1", "slots": {"$ne": 7}}
    update = {
        "$set": {"appeal_id": "ap_1", "summary.platform": "instagram"},
        "$setOnInsert": {"created": 1},
        "$min": {"first_index": 7},
        "$push": {"slots": 7, "entries": {"index": 7, "type": "submitted"}},
        "$addToSet": {"queues": {"$each": ["a", "b", "a"]}},
        "$inc": {"events": 1},
    }
    updates.check(_statement(query, update))
    document = updates.created(query)
    updates.apply(document, update, inserting=True)
    assert document == {
        "_id": "ap_1",
        "appeal_id": "ap_1",
        "summary": {"platform": "instagram"},
        "created": 1,
        "first_index": 7,
        "slots": [7],
        "entries": [{"index": 7, "type": "submitted"}],
        "queues": ["a", "b"],
        "events": 1,
    }


def test_later_statements_update_as_mongodb_would() -> None:
    document: dict[str, Any] = {"_id": "ap_1", "slots": [7], "first_index": 7, "queues": ["a"]}
    second = {"_id": "ap_1", "slots": {"$ne": 9}}
    assert updates.matches(document, second)
    updates.apply(
        document,
        {"$min": {"first_index": 9}, "$push": {"slots": 9}, "$addToSet": {"queues": "a"},
         "$setOnInsert": {"created": 2}, "$unset": {"gone": ""}},
        inserting=False,
    )  # fmt: skip
    assert document == {"_id": "ap_1", "slots": [7, 9], "first_index": 7, "queues": ["a"]}
    again = {"_id": "ap_1", "slots": {"$ne": 9}}
    assert not updates.matches(document, again)  # applying an entry twice is a no-op


@pytest.mark.parametrize(
    "statement",
    [
        _statement({"status": "open"}, {"$set": {"a": 1}}),  # not by _id
        _statement({"_id": "x", "n": {"$gt": 1}}, {"$set": {"a": 1}}),  # a range condition
        _statement({"_id": "x"}, {"a": 1}),  # a replacement
        _statement({"_id": "x"}, {"$pull": {"a": 1}}),  # an operator not applied here
        {**_statement({"_id": "x"}, {"$set": {"a": 1}}), "multi": True},
    ],
)
def test_what_is_not_applied_in_memory_is_declined(statement: dict[str, Any]) -> None:
    with pytest.raises(updates.Unsupported):
        updates.check(statement)
