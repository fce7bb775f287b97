"""An opt-in log of the *shape* of every store command, to prove hot paths look up by ``_id``.

FerretDB answers a filter that names ``_id`` by value from its index and every other filter by
reading the whole collection, so a query that stops naming the ``_id`` turns a constant cost
into one that grows with history. With ``APPEALS_STORE_QUERY_LOG`` naming a folder, each service
appends one JSON line per reading or writing command to ``<folder>/<service>.jsonl``: when, which
collection, which command and how it selects documents (``"_id"``, or ``"scan"`` with the names
of the fields it filters on; ``"insert"`` for inserts, which select nothing). Values are never
written: filters hold personal data. The end-to-end test ``test_store_queries`` reads these
files while traffic flows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pymongo import monitoring

QUERY_LOG_VARIABLE = "APPEALS_STORE_QUERY_LOG"
ID_LOOKUP = "_id"
SCAN = "scan"
# Inserts select nothing; they are logged too, so the log counts every write a service makes.
INSERT = "insert"
# Commands that select documents, and where their filters are.
_READING = ("find", "count", "distinct", "findAndModify", "aggregate")
_WRITING = {"update": "updates", "delete": "deletes"}


def selection(filter_document: Mapping[str, Any] | None) -> str:
    """``"_id"`` when the filter names the ``_id`` by value (one, or ``$in`` a list), beside
    other conditions or not; ``"scan"`` otherwise."""
    if not filter_document:
        return SCAN
    value = filter_document.get("_id")
    if value is None or (isinstance(value, (dict, list)) and not _in_list(value)):
        return SCAN
    return ID_LOOKUP


def _in_list(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"$in"} and isinstance(value["$in"], list)


def filters_of(command_name: str, command: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The filters a command selects documents with (one per statement of a bulk write)."""
    if command_name in _WRITING:
        for statement in command.get(_WRITING[command_name]) or ():
            yield statement.get("q") or {}
    elif command_name == "aggregate":
        pipeline = command.get("pipeline") or []
        first = pipeline[0] if pipeline else {}
        yield first.get("$match") or {} if isinstance(first, Mapping) else {}
    elif command_name == "find":
        yield command.get("filter") or {}
    else:
        yield command.get("query") or {}


class QueryLog(monitoring.CommandListener):
    def __init__(self, folder: Path, service: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._path = folder / f"{service}.jsonl"
        self._service = service
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        collection = event.command.get(name)
        if name == "insert":
            self._write([self._line(event, collection, INSERT)])
            return
        if name not in _READING and name not in _WRITING:
            return
        lines = []
        for found in filters_of(name, event.command):
            how = selection(found)
            line = self._line(event, collection, how)
            if how == SCAN:
                line["fields"] = sorted(str(key) for key in found)
            lines.append(line)
        self._write(lines)

    def _line(
        self, event: monitoring.CommandStartedEvent, collection: object, selects: str
    ) -> dict[str, Any]:
        return {
            "at": time.time(),
            "service": self._service,
            "database": event.database_name,
            "collection": collection if isinstance(collection, str) else "",
            "command": event.command_name,
            "selects": selects,
        }

    def _write(self, lines: list[dict[str, Any]]) -> None:
        if lines:
            with self._lock, self._path.open("a") as out:
                out.write("\n".join(json.dumps(line) for line in lines) + "\n")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
