"""The audit log's hash chain: building entries and verifying them. Pure functions, no I/O.

Each entry commits to everything stored in it and to the entry before it:

    hash = SHA-256(prev_hash bytes || canonical JSON of every field except ``hash``)

so changing a field breaks that entry's hash, removing an entry leaves a gap in the contiguous
indexes (``_id``) and moving an entry elsewhere breaks the ``prev_hash`` link at its new place.
The hash covers the *stored document* rather than a fixed list of fields, so a field that a
tamperer adds is detected as well as one changed.

What a chain alone cannot show: the newest entries cut off, or the whole log rewritten from some
entry on with every hash recomputed. Both need an anchor held outside the store (a published head
hash, i.e. a checkpoint); ``Verification.head_hash`` is the value to anchor.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The genesis entry links to 32 zero bytes: nothing came before it.
GENESIS_HASH = "00" * 32

INDEX = "_id"
PREV_HASH = "prev_hash"
HASH = "hash"

# Problems the verifier names, from the first bad entry on.
MISSING_ENTRY = "missing entry"
OUT_OF_ORDER = "out of order"
BROKEN_LINK = "broken link"
HASH_MISMATCH = "hash mismatch"
MALFORMED_ENTRY = "malformed entry"


@dataclass(frozen=True)
class LoggedEvent:
    """What the log records about one message, before it has a place in the chain."""

    event_id: str
    appeal_id: str
    # submitted / routed / claimed / released / decided / notified / restore_requested
    type: str
    schema: str
    producer: str
    topic: str
    occurred_at: datetime
    payload: bytes


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    head_hash: str
    first_bad_index: int | None = None
    problem: str | None = None


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
    """Deterministic JSON of every field but ``hash``: sorted keys, no whitespace, ASCII."""
    content = {name: value for name, value in entry.items() if name != HASH}
    return json.dumps(
        content,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
        default=_canonical_value,
    ).encode("ascii")


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash ``entry`` must carry, given its own ``prev_hash``."""
    prev = bytes.fromhex(entry[PREV_HASH])
    return hashlib.sha256(prev + canonical_bytes(entry)).hexdigest()


def new_entry(
    event: LoggedEvent, *, tail: Mapping[str, Any] | None, recorded_at: datetime
) -> dict[str, Any]:
    """The entry that follows ``tail`` (None: the log is empty), hash included."""
    entry: dict[str, Any] = {
        INDEX: 0 if tail is None else int(tail[INDEX]) + 1,
        "event_id": event.event_id,
        "appeal_id": event.appeal_id,
        "type": event.type,
        "schema": event.schema,
        "producer": event.producer,
        "topic": event.topic,
        "occurred_at": store_precision(event.occurred_at),
        "recorded_at": store_precision(recorded_at),
        "payload": base64.b64encode(event.payload).decode("ascii"),
        PREV_HASH: GENESIS_HASH if tail is None else str(tail[HASH]),
    }
    entry[HASH] = entry_hash(entry)
    return entry


class ChainVerifier:
    """Checks entries one at a time, in log order, so a log of any size streams through it.

    Only the first problem is reported: every later link depends on the entry that is bad, so
    what follows it proves nothing more. Entries after it are still counted.
    """

    def __init__(self) -> None:
        self._count = 0
        self._expected_index = 0
        self._prev_hash = GENESIS_HASH
        self._head_hash = GENESIS_HASH
        self._first_bad: int | None = None
        self._problem: str | None = None

    def add(self, entry: Mapping[str, Any]) -> None:
        self._count += 1
        stored_hash = entry.get(HASH)
        self._head_hash = stored_hash if isinstance(stored_hash, str) else ""
        if self._problem is not None:
            return
        problem = self._check(entry)
        if problem is not None:
            self._first_bad, self._problem = self._expected_index, problem
            return
        self._expected_index += 1
        self._prev_hash = self._head_hash

    def _check(self, entry: Mapping[str, Any]) -> str | None:
        return self._check_place(entry) or self._check_content(entry)

    def _check_place(self, entry: Mapping[str, Any]) -> str | None:
        """Is this the entry that must come next: the next index, linked to the last hash?"""
        index = entry.get(INDEX)
        if not isinstance(index, int) or isinstance(index, bool):
            return MALFORMED_ENTRY
        if index > self._expected_index:
            return MISSING_ENTRY
        if index < self._expected_index:
            return OUT_OF_ORDER
        if entry.get(PREV_HASH) != self._prev_hash:
            return BROKEN_LINK
        return None

    @staticmethod
    def _check_content(entry: Mapping[str, Any]) -> str | None:
        """Does the entry still hold exactly what was hashed when it was appended?"""
        try:
            expected_hash = entry_hash(entry)
        except (KeyError, TypeError, ValueError):
            return MALFORMED_ENTRY
        return None if entry.get(HASH) == expected_hash else HASH_MISMATCH

    def result(self) -> Verification:
        return Verification(
            ok=self._problem is None,
            entries=self._count,
            head_hash=self._head_hash,
            first_bad_index=self._first_bad,
            problem=self._problem,
        )


def verify_chain(entries: Iterable[Mapping[str, Any]]) -> Verification:
    verifier = ChainVerifier()
    for entry in entries:
        verifier.add(entry)
    return verifier.result()
