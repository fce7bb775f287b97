"""The audit hash chain: a chain verifies, and each kind of tampering is found where it happened."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.audit import chain

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
Entries = list[dict[str, Any]]


def logged_event(n: int) -> chain.LoggedEvent:
    return chain.LoggedEvent(
        event_id=f"event-{n}",
        appeal_id=f"appeal-{n % 3}",
        type="routed",
        schema="appeals.v1.AppealRouted",
        producer="routing",
        topic="appeals.lifecycle.v1",
        # Microseconds the store would drop: entries must hash what reads back.
        occurred_at=START + timedelta(seconds=n, microseconds=123_456),
        payload=bytes([n % 256]) * 8,
    )


def build_chain(length: int) -> Entries:
    entries: Entries = []
    for n in range(length):
        tail = entries[-1] if entries else None
        recorded_at = START + timedelta(seconds=n, milliseconds=500)
        entries.append(chain.new_entry(logged_event(n), tail=tail, recorded_at=recorded_at))
    return entries


def swap_contents(entries: Entries, first: int, second: int) -> None:
    """Swap everything but the indexes, as a store update of two documents would."""
    a, b = entries[first], entries[second]
    a_content = {k: v for k, v in a.items() if k != chain.INDEX}
    b_content = {k: v for k, v in b.items() if k != chain.INDEX}
    a.update(b_content)
    b.update(a_content)


def test_a_chain_of_entries_verifies_with_its_last_hash_as_head() -> None:
    entries = build_chain(10)

    result = chain.verify_chain(entries)

    assert result == chain.Verification(ok=True, entries=10, head_hash=entries[-1]["hash"])
    assert [e["_id"] for e in entries] == list(range(10))
    assert entries[0]["prev_hash"] == chain.GENESIS_HASH
    assert all(entries[i]["prev_hash"] == entries[i - 1]["hash"] for i in range(1, 10))


def test_an_empty_log_verifies_with_the_genesis_hash_as_head() -> None:
    assert chain.verify_chain([]) == chain.Verification(
        ok=True, entries=0, head_hash=chain.GENESIS_HASH
    )


def test_entries_are_hashed_as_the_store_reads_them_back() -> None:
    (entry,) = build_chain(1)
    assert entry["occurred_at"] == START + timedelta(microseconds=123_000)
    # A copy, as from the store: same values, new objects, keys in another order.
    read_back = dict(reversed(list(copy.deepcopy(entry).items())))
    assert chain.entry_hash(read_back) == entry["hash"]


def test_the_canonical_form_is_sorted_compact_json_with_rfc3339_utc_times() -> None:
    moment = datetime(2025, 3, 1, 13, 0, 0, 123_999, tzinfo=timezone(timedelta(hours=1)))
    content = chain.canonical_bytes({"b": 1, "a": moment, "hash": "ignored"})
    assert content == b'{"a":"2025-03-01T12:00:00.123Z","b":1}'


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("appeal_id", "appeal-someone-else"),
        ("payload", "dGFtcGVyZWQ="),
        ("type", "decided"),
        ("occurred_at", START),
        ("recorded_at", START + timedelta(days=1)),
    ],
)
def test_a_modified_field_is_a_hash_mismatch_at_that_entry(field: str, value: Any) -> None:
    entries = build_chain(8)
    entries[5][field] = value

    result = chain.verify_chain(entries)

    assert (result.ok, result.first_bad_index, result.problem) == (False, 5, chain.HASH_MISMATCH)
    assert result.entries == 8


def test_an_added_or_removed_field_is_a_hash_mismatch() -> None:
    added, removed = build_chain(4), build_chain(4)
    added[2]["note"] = "looks harmless"
    del removed[2]["producer"]
    for entries in (added, removed):
        result = chain.verify_chain(entries)
        assert (result.first_bad_index, result.problem) == (2, chain.HASH_MISMATCH)


def test_an_entry_rehashed_after_a_change_breaks_the_link_of_the_next_one() -> None:
    entries = build_chain(6)
    entries[3]["appeal_id"] = "rewritten"
    entries[3]["hash"] = chain.entry_hash(entries[3])

    result = chain.verify_chain(entries)

    assert (result.first_bad_index, result.problem) == (4, chain.BROKEN_LINK)


def test_a_deleted_entry_is_missing_at_its_index() -> None:
    entries = build_chain(8)
    del entries[3]

    result = chain.verify_chain(entries)

    assert (result.ok, result.first_bad_index, result.problem) == (False, 3, chain.MISSING_ENTRY)
    assert result.entries == 7


def test_a_deleted_genesis_entry_is_missing_at_index_zero() -> None:
    entries = build_chain(3)[1:]
    result = chain.verify_chain(entries)
    assert (result.first_bad_index, result.problem) == (0, chain.MISSING_ENTRY)


def test_a_truncated_middle_is_missing_from_its_first_index() -> None:
    entries = build_chain(10)
    del entries[3:7]

    result = chain.verify_chain(entries)

    assert (result.first_bad_index, result.problem) == (3, chain.MISSING_ENTRY)
    assert result.entries == 6
    assert result.head_hash == entries[-1]["hash"]


def test_deleted_entries_renumbered_to_close_the_gap_break_the_link() -> None:
    entries = build_chain(8)
    del entries[3]
    for index, entry in enumerate(entries):
        entry["_id"] = index

    result = chain.verify_chain(entries)

    assert (result.first_bad_index, result.problem) == (3, chain.BROKEN_LINK)


@pytest.mark.parametrize(("first", "second"), [(2, 3), (1, 6), (0, 7)])
def test_two_swapped_entries_break_the_link_at_the_first_of_them(first: int, second: int) -> None:
    entries = build_chain(8)
    swap_contents(entries, first, second)

    result = chain.verify_chain(entries)

    assert (result.ok, result.first_bad_index, result.problem) == (False, first, chain.BROKEN_LINK)


def test_entries_read_out_of_index_order_are_reported() -> None:
    entries = build_chain(5)
    entries[1], entries[2] = entries[2], entries[1]
    result = chain.verify_chain(entries)
    assert (result.first_bad_index, result.problem) == (1, chain.MISSING_ENTRY)

    duplicated = build_chain(3)
    duplicated.insert(2, duplicated[1])
    result = chain.verify_chain(duplicated)
    assert (result.first_bad_index, result.problem) == (2, chain.OUT_OF_ORDER)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda entry: entry.update(_id="3"),
        lambda entry: entry.update(payload=b"raw bytes have no canonical form"),
        lambda entry: entry.update(occurred_at=datetime(2025, 1, 1)),  # naive
    ],
)
def test_an_entry_that_cannot_be_hashed_is_malformed_not_a_crash(tamper: Any) -> None:
    entries = build_chain(5)
    tamper(entries[3])

    result = chain.verify_chain(entries)

    assert (result.first_bad_index, result.problem) == (3, chain.MALFORMED_ENTRY)


def test_an_untouched_chain_raises_no_false_alarm_however_it_is_read() -> None:
    entries = build_chain(50)
    once = chain.verify_chain(entries)
    again = chain.verify_chain(copy.deepcopy(entries))
    assert once.ok and again.ok
    assert once == again
