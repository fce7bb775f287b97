"""Intake's status view is inserted, never updated: each applied event is a document of its own
at the appeal's next position, and a look-up folds them onto the record. Against the real store:
order, redeliveries, two instances taking turns on one appeal with stale memories, and records
whose earlier changes an earlier version applied in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appeals.events import derived_event_id, new_event
from appeals.v1 import appeal_pb2, events_pb2
from appeals_runtime import store
from services.intake import identity, repository
from services.intake.model import AppealRecord, status_change
from services.intake.schemas import AppealIn
from services.intake.status_entries import STATUS_ENTRIES, LegacyWindow, entry_id
from tests.support.bodies import fresh_body

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def event(appeal_id: str, kind: str, minutes: int, **payload: Any) -> events_pb2.AppealEvent:
    return new_event(
        event_id=derived_event_id(appeal_id, kind, str(minutes)),
        appeal_id=appeal_id,
        producer="tests",
        occurred_at=NOW + timedelta(minutes=minutes),
        **payload,
    )


def routed(appeal_id: str, minutes: int = 1) -> events_pb2.AppealEvent:
    return event(appeal_id, "routed", minutes, routed=events_pb2.AppealRouted(queue="en-general"))


def claimed(appeal_id: str, minutes: int = 2) -> events_pb2.AppealEvent:
    return event(appeal_id, "claimed", minutes, claimed=events_pb2.CaseClaimed(agent_id="ana"))


def decided(appeal_id: str, minutes: int = 3) -> events_pb2.AppealEvent:
    outcome = events_pb2.AppealDecided(outcome=appeal_pb2.OUTCOME_OVERTURNED)
    return event(appeal_id, "decided", minutes, decided=outcome)


async def apply(repo: repository.IntakeRepository, applied: events_pb2.AppealEvent) -> bool:
    change = status_change(applied)
    assert change is not None
    return await repo.apply_status(applied.appeal_id, applied.event_id, change)


async def recorded(repo: repository.IntakeRepository) -> str:
    """An appeal recorded as intake's submit records it, its submitted event seen."""
    appeal_id = identity.new_appeal_id()
    submission = AppealIn.model_validate(fresh_body()).to_proto()
    await repo.insert_appeal(AppealRecord(appeal_id, "tests", submission, "received", NOW, NOW))
    repo.status.started(appeal_id)
    return appeal_id


async def positions(db: store.Database, appeal_id: str) -> list[str]:
    ids = [entry_id(appeal_id, n) for n in range(10)]
    documents = await db[STATUS_ENTRIES].find({"_id": {"$in": ids}}).to_list()
    by_id = {d["_id"]: d["event_id"] for d in documents}
    return [by_id[i] for i in ids if i in by_id]


async def test_changes_apply_in_order_and_a_look_up_folds_them_onto_the_record(
    db: store.Database,
) -> None:
    repo = repository.IntakeRepository(db)
    appeal_id = await recorded(repo)
    for applied in (routed(appeal_id), claimed(appeal_id)):
        assert await apply(repo, applied)
    record = await repo.get_appeal(appeal_id)
    assert record is not None
    assert (record.status, record.queue, record.updated_at) == (
        "in_review", "en-general", NOW + timedelta(minutes=2)
    )  # fmt: skip
    assert await apply(repo, decided(appeal_id))
    record = await repo.get_appeal(appeal_id)
    assert record is not None and (record.status, record.outcome) == ("decided", "overturned")
    # A fresh instance (nothing remembered) reads the same.
    again = await repository.IntakeRepository(db).get_appeal(appeal_id)
    assert again is not None and (again.status, again.outcome, again.queue) == (
        "decided", "overturned", "en-general"
    )  # fmt: skip


async def test_a_redelivered_event_is_not_applied_again_remembered_or_not(
    db: store.Database,
) -> None:
    repo = repository.IntakeRepository(db)
    appeal_id = await recorded(repo)
    first, second = routed(appeal_id), claimed(appeal_id)
    assert await apply(repo, first) and await apply(repo, second)
    assert not await apply(repo, first)  # remembered
    forgetful = repository.IntakeRepository(db)  # a restart: read from the store
    assert not await apply(forgetful, first)
    assert not await apply(forgetful, second)
    record = await forgetful.get_appeal(appeal_id)
    assert record is not None and record.status == "in_review"  # not back to "queued"
    assert await positions(db, appeal_id) == [first.event_id, second.event_id]


async def test_two_instances_taking_turns_on_one_appeal_keep_one_dense_history(
    db: store.Database,
) -> None:
    """Each instance's memory goes stale when the other applies a change (a rebalance moved the
    partition between them): the position it expects is taken, it reads the appeal again and
    the change goes after, or is found there."""
    one, other = repository.IntakeRepository(db), repository.IntakeRepository(db)
    appeal_id = await recorded(one)
    other.status.started(appeal_id)  # both saw the submitted event
    assert await apply(one, routed(appeal_id))
    assert await apply(other, claimed(appeal_id))  # expected position 0: taken
    assert not await apply(other, routed(appeal_id))  # read again above: known applied
    assert await apply(one, decided(appeal_id))  # expected position 1: taken
    assert not await apply(other, decided(appeal_id))
    assert await positions(db, appeal_id) == [
        routed(appeal_id).event_id, claimed(appeal_id).event_id, decided(appeal_id).event_id
    ]  # fmt: skip
    record = await other.get_appeal(appeal_id)
    assert record is not None and record.status == "decided"


async def test_an_instance_remembering_few_appeals_reads_the_ones_it_forgot(
    db: store.Database,
) -> None:
    repo = repository.IntakeRepository(db)
    repo.status = type(repo.status)(db, remembered=1)
    first, second = await recorded(repo), await recorded(repo)  # the first is forgotten
    assert await apply(repo, routed(first)) and await apply(repo, routed(second))
    assert await apply(repo, claimed(first))
    assert not await apply(repo, routed(first))
    assert await positions(db, first) == [routed(first).event_id, claimed(first).event_id]


async def test_changes_an_earlier_version_applied_in_place_are_neither_applied_again_nor_lost(
    db: store.Database,
) -> None:
    """A store from before the entries: the record holds its status and the events applied to it.
    After the upgrade, a redelivery of one of those events changes nothing; a new event goes on
    top of what the record says."""
    appeal_id = identity.new_appeal_id()
    submission = AppealIn.model_validate(fresh_body()).to_proto()
    first, second = routed(appeal_id), claimed(appeal_id)
    await db[repository.APPEALS].insert_one({
        "_id": appeal_id, "surface": "tests", "platform": "instagram",
        "submission": submission.SerializeToString(), "status": "in_review",
        "queue": "en-general", "reviewer": "ana", "received_at": NOW,
        "updated_at": NOW + timedelta(minutes=2), "acknowledged": True,
        "applied_events": [derived_event_id(appeal_id, "submitted"), first.event_id,
                           second.event_id],
    })  # fmt: skip
    repo = repository.IntakeRepository(db)
    await repo.status_legacy.load(NOW + timedelta(minutes=2, seconds=30))  # the upgrade
    assert not await apply(repo, second)  # a redelivery after the upgrade
    assert not await apply(repo, first)
    assert await apply(repo, decided(appeal_id))
    record = await repo.get_appeal(appeal_id)
    assert record is not None
    assert (record.status, record.queue, record.outcome) == ("decided", "en-general", "overturned")
    assert await positions(db, appeal_id) == [decided(appeal_id).event_id]


async def test_the_legacy_window_is_empty_on_a_new_store_and_set_once_on_an_old_one(
    db: store.Database,
) -> None:
    fresh = LegacyWindow(db, db[repository.APPEALS])
    await fresh.load(NOW)
    assert fresh.before is None and not fresh.may_hold(NOW - timedelta(days=1))
    await db.drop_collection("intake_upgrades")

    repo = repository.IntakeRepository(db)
    await recorded(repo)
    upgraded = LegacyWindow(db, db[repository.APPEALS])
    await upgraded.load(NOW)
    assert upgraded.before is not None
    assert upgraded.may_hold(NOW) and not upgraded.may_hold(NOW + timedelta(minutes=5))
    later = LegacyWindow(db, db[repository.APPEALS])
    await later.load(NOW + timedelta(days=3))  # a restart keeps the first start's window
    assert later.before == upgraded.before
