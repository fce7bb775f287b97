"""Intake's memory of the records it just wrote: served for seconds, bounded, forgettable."""

from __future__ import annotations

from datetime import UTC, datetime

from appeals.v1 import appeal_pb2
from services.intake.fresh_records import FreshRecords
from services.intake.model import AppealRecord

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def record(appeal_id: str) -> AppealRecord:
    return AppealRecord(appeal_id, "surface", appeal_pb2.AppealSubmission(), "received", NOW, NOW)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_kept_record_is_served_until_its_time_is_up() -> None:
    clock = Clock()
    fresh = FreshRecords(ttl_s=10, clock=clock)
    fresh.keep(record("ap_1"))
    clock.now += 9.9
    assert fresh.get("ap_1") == record("ap_1")
    clock.now += 0.2
    assert fresh.get("ap_1") is None
    assert len(fresh) == 0


def test_the_oldest_go_first_when_full() -> None:
    fresh = FreshRecords(capacity=2, clock=Clock())
    for appeal_id in ("ap_1", "ap_2", "ap_3"):
        fresh.keep(record(appeal_id))
    assert fresh.get("ap_1") is None
    assert [fresh.get(a) is not None for a in ("ap_2", "ap_3")] == [True, True]


def test_a_forgotten_record_is_read_from_the_store_again() -> None:
    fresh = FreshRecords(clock=Clock())
    fresh.keep(record("ap_1"))
    fresh.forget("ap_1")
    fresh.forget("ap_unknown")  # nothing to forget: no error
    assert fresh.get("ap_1") is None


def test_keeping_a_record_again_renews_it() -> None:
    clock = Clock()
    fresh = FreshRecords(ttl_s=10, clock=clock)
    fresh.keep(record("ap_1"))
    clock.now += 8
    fresh.keep(record("ap_2"))
    fresh.keep(record("ap_1"))
    clock.now += 8
    assert fresh.get("ap_1") is not None and fresh.get("ap_2") is not None
