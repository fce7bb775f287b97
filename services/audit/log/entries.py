"""Log entries: what one leaf of the Merkle tree holds, and the exact bytes it hashes. Pure.

An entry is a document in the store. Its leaf hash covers every field except ``_id`` (the store's
key, derived from ``index``) and ``leaf_hash`` (the cached result):

    leaf_hash = SHA-256(0x00 || canonical JSON of the entry)

The hash covers the *stored document* rather than a fixed list of fields, so a field a tamperer
adds is caught as well as one changed, and the entry names its own ``index``, so content moved to
another slot is caught too. The canonical JSON (sorted keys, no whitespace, ASCII, times as RFC 3339
UTC with milliseconds) is what :func:`public_form` hands to third parties: re-serialising it the
same way gives the same bytes, so they can recompute the leaf hash without our code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appeals_proofs.merkle import leaf_hash

# Bumped if what an entry holds ever changes, so old and new entries stay verifiable side by side.
ENTRY_FORMAT = 1
KEY_DIGITS = 12

STORE_KEY = "_id"
LEAF_HASH = "leaf_hash"
NOT_HASHED = frozenset({STORE_KEY, LEAF_HASH})

# Entries that are about the log itself rather than an appeal carry this appeal id.
NO_APPEAL = ""


@dataclass(frozen=True)
class LoggedEvent:
    """What the log records about one message, before it has a place in the tree."""

    event_id: str
    appeal_id: str
    # submitted / routed / claimed / decided / notified / restore_requested / access / erasure...
    type: str
    schema: str
    producer: str
    topic: str
    occurred_at: datetime
    payload: bytes
    # Personal data, encrypted for one person (see privacy.py): {"subject", "nonce", ...}.
    sealed: Mapping[str, str] | None = None


def entry_key(index: int) -> str:
    """The store key of entry ``index``: zero-padded, so keys sort like indexes and a lookup is
    an ``_id`` equality, the one query every MongoDB-wire store answers from an index."""
    if index < 0:
        raise ValueError("entry indexes start at 0")
    return f"{index:0{KEY_DIGITS}d}"


def slot_of(key: object) -> int | None:
    """The index a store key names, or None for a key no entry should have."""
    if isinstance(key, str) and len(key) == KEY_DIGITS and key.isdigit():
        return int(key)
    return None


def store_precision(moment: datetime) -> datetime:
    """``moment`` in UTC, cut to the milliseconds a BSON date holds.

    Entries are hashed as they will read back from the store; a microsecond the store drops
    would otherwise turn into a false alarm.
    """
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. ``2025-03-01T12:00:00.123Z``."""
    utc = store_precision(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _canonical_value(value: object) -> str:
    if isinstance(value, datetime):
        return rfc3339(value)
    raise TypeError(f"{type(value).__name__} has no canonical form in the audit log")


def canonical_bytes(entry: Mapping[str, Any]) -> bytes:
    content = {name: value for name, value in entry.items() if name not in NOT_HASHED}
    return json.dumps(
        content,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
        default=_canonical_value,
    ).encode("ascii")


def entry_leaf_hash(entry: Mapping[str, Any]) -> bytes:
    return leaf_hash(canonical_bytes(entry))


def public_form(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed content as plain JSON: what a proof carries for a third party to re-hash."""
    parsed: dict[str, Any] = json.loads(canonical_bytes(entry))
    return parsed


def new_entry(event: LoggedEvent, *, index: int, recorded_at: datetime) -> dict[str, Any]:
    """The document for leaf ``index``, its leaf hash included."""
    entry: dict[str, Any] = {
        STORE_KEY: entry_key(index),
        "v": ENTRY_FORMAT,
        "index": index,
        "event_id": event.event_id,
        "appeal_id": event.appeal_id,
        "type": event.type,
        "schema": event.schema,
        "producer": event.producer,
        "topic": event.topic,
        "occurred_at": store_precision(event.occurred_at),
        "recorded_at": store_precision(recorded_at),
        "payload": base64.b64encode(event.payload).decode("ascii"),
    }
    if event.sealed is not None:
        entry["sealed"] = dict(event.sealed)
    entry[LEAF_HASH] = entry_leaf_hash(entry).hex()
    return entry


def payload_of(entry: Mapping[str, Any]) -> bytes:
    return base64.b64decode(entry["payload"])
