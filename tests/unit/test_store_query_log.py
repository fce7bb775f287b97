"""How the store query log tells an `_id` lookup from a scan (pure)."""

from __future__ import annotations

import json
from pathlib import Path

from pymongo import monitoring

from appeals_runtime.query_log import QueryLog, filters_of, selection


def test_a_filter_naming_the_id_by_value_is_a_lookup_and_anything_else_a_scan() -> None:
    assert selection({"_id": "ap_1"}) == "_id"
    assert selection({"_id": "ap_1", "version": {"$lt": 3}}) == "_id"
    assert selection({"_id": {"$in": ["a", "b"]}}) == "_id"
    assert selection({}) == "scan"
    assert selection(None) == "scan"
    assert selection({"appeal_id": "ap_1"}) == "scan"
    assert selection({"_id": {"$gte": "a"}}) == "scan"
    assert selection({"_id": {"$ne": "a"}, "status": "queued"}) == "scan"


def test_the_filters_of_each_command_are_found() -> None:
    assert list(filters_of("find", {"find": "c", "filter": {"_id": "x"}})) == [{"_id": "x"}]
    updates = {"update": "c", "updates": [{"q": {"_id": "x"}}, {"q": {"kind": "y"}}]}
    assert list(filters_of("update", updates)) == [{"_id": "x"}, {"kind": "y"}]
    deletes = {"delete": "c", "deletes": [{"q": {"expires_at": 1}}]}
    assert list(filters_of("delete", deletes)) == [{"expires_at": 1}]
    assert list(filters_of("count", {"count": "c", "query": {"a": 1}})) == [{"a": 1}]
    pipeline = {"aggregate": "c", "pipeline": [{"$match": {"_id": "x"}}, {"$sort": {"a": 1}}]}
    assert list(filters_of("aggregate", pipeline)) == [{"_id": "x"}]
    assert list(filters_of("aggregate", {"aggregate": "c", "pipeline": []})) == [{}]


def test_the_log_names_fields_but_never_values(tmp_path: Path) -> None:
    log = QueryLog(tmp_path, "intake")
    secret = "user-4711@example.org"
    for command in (
        {"find": "appeals", "filter": {"_id": "ap_1"}},
        {"find": "appeals", "filter": {"contact.email": secret}},
        {"insert": "appeals", "documents": [{"_id": "ap_2", "email": secret}]},
    ):
        log.started(monitoring.CommandStartedEvent(command, "db", 1, ("127.0.0.1", 27017), 1))
    text = (tmp_path / "intake.jsonl").read_text()
    assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(line["command"], line["selects"]) for line in lines] == [
        ("find", "_id"),
        ("find", "scan"),
        ("insert", "insert"),
    ]
    assert lines[1]["fields"] == ["contact.email"]
