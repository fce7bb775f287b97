"""Watching what the store is asked: a store client whose commands are recorded, with what each
selects documents by."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from appeals_runtime import store


@dataclass(frozen=True)
class StoreCommand:
    name: str
    collection: str
    # The filters the command selects documents by (find: one; update and delete: one each).
    filters: list[dict[str, Any]]
    # Documents an insert carries.
    inserted: int = 0


@dataclass
class CommandLog(monitoring.CommandListener):
    """Every command a client sends, as far as the tests need it (what it selects by)."""

    commands: list[StoreCommand] = dataclasses.field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command, name = event.command, event.command_name
        collection = command.get(name)
        filters = {
            "find": lambda: [command.get("filter") or {}],
            "update": lambda: [u.get("q") or {} for u in command.get("updates", [])],
            "delete": lambda: [d.get("q") or {} for d in command.get("deletes", [])],
            "count": lambda: [command.get("query") or {}],
            "distinct": lambda: [command.get("query") or {}],
        }.get(name, list)()
        inserted = len(command.get("documents", [])) if name == "insert" else 0
        self.commands.append(StoreCommand(name, str(collection), filters, inserted))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        self.commands.clear()

    def on(self, collection: str, *names: str) -> list[StoreCommand]:
        return [c for c in self.commands if c.collection == collection and c.name in names]

    def selecting(self) -> Iterator[tuple[StoreCommand, dict[str, Any]]]:
        """Every filter of every command that selects documents (reads, updates, deletes)."""
        for command in self.commands:
            if command.name in ("find", "update", "delete", "count", "distinct", "aggregate"):
                for query in command.filters or [{}]:
                    yield command, query


def names_the_id(query: dict[str, Any]) -> bool:
    """Whether a filter selects by ``_id`` value: what FerretDB answers from its ``_id`` index
    (``{_id: v}`` or ``{_id: {$in: [...]}}``, other conditions beside it allowed)."""
    value = query.get("_id")
    if isinstance(value, (str, ObjectId)):
        return True
    if isinstance(value, dict) and set(value) == {"$in"}:
        return bool(value["$in"]) and all(isinstance(v, (str, ObjectId)) for v in value["$in"])
    return False


def watched_client(url: str) -> tuple[AsyncMongoClient[store.Document], CommandLog]:
    """A store client like the services' whose commands are recorded."""
    commands = CommandLog()
    return AsyncMongoClient(url, tz_aware=True, event_listeners=[commands]), commands
