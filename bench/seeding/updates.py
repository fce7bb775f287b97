"""MongoDB update statements applied to documents in memory, for seeding. Pure.

Seeding writes documents that do not exist yet (fresh ids). A service whose repository builds
such a document with several update statements (an upsert, then one ``$push`` per event) would
cost one store round trip per statement; applied here instead, the finished document goes to
the store once, in a bulk insert. Only what seeding meets is supported, with MongoDB's meaning:
a query of ``_id`` equality plus equality or ``$ne`` conditions, and the operators ``$set``,
``$setOnInsert``, ``$unset``, ``$inc``, ``$min``, ``$max``, ``$push`` and ``$addToSet`` (with
``$each``) on top-level or dotted fields. Anything else raises :class:`Unsupported`, and the caller
sends the statement to the store as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

SUPPORTED = frozenset(
    {"$set", "$setOnInsert", "$unset", "$inc", "$min", "$max", "$push", "$addToSet"}
)


_IMMUTABLE = (str, int, float, bool, bytes, datetime, type(None))


def _copy(value: Any) -> Any:
    """A value safe to store in a document built here (scalars are shared, not copied)."""
    return value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value)


class Unsupported(Exception):  # noqa: N818 - a signal to fall back, not a failure
    """A statement this module does not apply; send it to the store."""


def check(statement: Mapping[str, Any]) -> None:
    """Raises :class:`Unsupported` unless :func:`apply` can apply ``statement``."""
    query, update = statement.get("q"), statement.get("u")
    if not isinstance(query, Mapping) or not isinstance(update, Mapping):
        raise Unsupported("not a query and an update document")
    if statement.get("multi") or set(statement) - {"q", "u", "upsert", "multi"}:
        raise Unsupported("multi-document updates, arrays filters, hints, collations")
    if not isinstance(query.get("_id"), str):
        raise Unsupported("the query must name the document by a string _id")
    for name, condition in query.items():
        if isinstance(condition, Mapping) and set(condition) != {"$ne"}:
            raise Unsupported(f"condition on {name}: only equality and $ne")
    if not update or not set(update) <= SUPPORTED:
        raise Unsupported(f"operators {sorted(set(update) - SUPPORTED)} (or a replacement)")


def matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    for name, condition in query.items():
        value = _get(document, name)
        if isinstance(condition, Mapping):  # {"$ne": x}: no element or value equal to x
            wanted = condition["$ne"]
            if value == wanted or (isinstance(value, list) and wanted in value):
                return False
        elif not (value == condition or (isinstance(value, list) and condition in value)):
            return False
    return True


def created(query: Mapping[str, Any]) -> dict[str, Any]:
    """The document an upsert starts from: the query's equality fields."""
    document: dict[str, Any] = {}
    for name, condition in query.items():
        if not isinstance(condition, Mapping):
            _set(document, name, _copy(condition))
    return document


def apply(document: dict[str, Any], update: Mapping[str, Any], *, inserting: bool) -> None:
    """Apply ``update``'s operators to ``document`` in place."""
    for operator, fields in update.items():
        for name, argument in fields.items():
            _apply_one(document, operator, name, argument, inserting=inserting)


def _apply_one(
    document: dict[str, Any], operator: str, name: str, argument: Any, *, inserting: bool
) -> None:
    current = _get(document, name)
    if operator == "$set" or (operator == "$setOnInsert" and inserting):
        _set(document, name, _copy(argument))
    elif operator == "$unset":
        _unset(document, name)
    elif operator == "$inc":
        _set(document, name, (current or 0) + argument)
    elif operator == "$min":
        _set(document, name, argument if current is None else min(current, argument))
    elif operator == "$max":
        _set(document, name, argument if current is None else max(current, argument))
    elif operator in ("$push", "$addToSet"):
        items = _each(argument)
        listed = list(current) if isinstance(current, list) else []
        if current is not None and not isinstance(current, list):
            raise Unsupported(f"{operator} on {name}, which is not an array")
        for item in items:
            if operator == "$push" or item not in listed:
                listed.append(_copy(item))
        _set(document, name, listed)


def _each(argument: Any) -> list[Any]:
    if isinstance(argument, Mapping) and "$each" in argument:
        if set(argument) != {"$each"}:
            raise Unsupported("$push modifiers other than $each")
        return list(argument["$each"])
    return [argument]


def _get(document: Mapping[str, Any], name: str) -> Any:
    value: Any = document
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _set(document: dict[str, Any], name: str, value: Any) -> None:
    *parents, last = name.split(".")
    target = document
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise Unsupported(f"{name} goes through a value that is not a document")
    target[last] = value


def _unset(document: dict[str, Any], name: str) -> None:
    *parents, last = name.split(".")
    target: Any = document
    for part in parents:
        target = target.get(part) if isinstance(target, dict) else None
    if isinstance(target, dict):
        target.pop(last, None)
