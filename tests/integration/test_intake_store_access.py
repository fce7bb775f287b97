"""Every store operation intake does per submit, per status event, per read and per sweep names
its documents by ``_id`` (FerretDB answers nothing else from an index: any other filter scans the
collection), and a submit takes the fewest round trips its guarantees allow.

Watched on the wire: a command listener on the client intake uses records every command sent to
the real store while intake's real app and status projection do their work.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from appeals.events import derived_event_id, new_event
from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.expiries import SWEPT_THROUGH
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.intake import identity, repository
from services.intake.consumer import StatusProjection
from services.intake.schemas import AppealIn
from tests.support.bodies import fresh_body
from tests.support.intake_app import IntakeUnderTest, start_intake

pytestmark = pytest.mark.integration

# Commands that carry no filter over documents.
WITHOUT_FILTER = {"insert", "ping", "hello", "isMaster", "ismaster", "endSessions", "buildInfo"}


@dataclass
class Recorder(monitoring.CommandListener):
    """Every command sent to one database, in order."""

    database: str
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        taken, self.commands = self.commands, []
        return taken


def filters(name: str, command: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The document filters a command applies; fails on commands that always scan."""
    if name == "find":
        assert not command.get("sort") and not command.get("skip"), command
        yield command.get("filter", {})
    elif name == "findAndModify":
        assert not command.get("sort"), command
        yield command["query"]
    elif name == "update":
        yield from (update["q"] for update in command["updates"])
    elif name == "delete":
        yield from (delete["q"] for delete in command["deletes"])
    elif name not in WITHOUT_FILTER:
        raise AssertionError(f"{name} is not an _id operation: {command}")


def names_ids(query: dict[str, Any]) -> bool:
    value = query.get("_id")
    if isinstance(value, str):
        return True
    return (
        isinstance(value, dict)
        and set(value) == {"$in"}
        and all(isinstance(one, str) for one in value["$in"])
    )


def assert_by_id(commands: list[tuple[str, dict[str, Any]]]) -> None:
    for name, command in commands:
        for query in filters(name, command):
            assert names_ids(query), f"{name} on {command.get(name)} filters by {query}"


@pytest.fixture
async def watched(
    infra: Infrastructure, db: store.Database, producer: EventProducer, tmp_path: Path
) -> AsyncIterator[tuple[IntakeUnderTest, Recorder, list[datetime]]]:
    """Intake's app on a client whose every command is recorded, with a clock tests move."""
    recorder = Recorder(db.name)
    client: AsyncMongoClient[store.Document] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[recorder]
    )
    now = [datetime.now(UTC)]
    under_test = await start_intake(
        client[db.name], producer, tmp_path, clock=lambda: now[0],
        policy_overrides={"key_ttl": timedelta(minutes=10)},
    )  # fmt: skip
    recorder.take()
    yield under_test, recorder, now
    await under_test.client.aclose()
    await client.close()


def lifecycle(appeal_id: str, kind: str, **payload: Any) -> InboundMessage[events_pb2.AppealEvent]:
    event = new_event(event_id=derived_event_id(appeal_id, kind), appeal_id=appeal_id,
                      producer="tests", **payload)  # fmt: skip
    return InboundMessage("t", 0, 0, appeal_id, event, {}, 0)


async def test_a_fresh_submit_is_five_id_writes_and_everything_else_is_by_id_too(
    watched: tuple[IntakeUnderTest, Recorder, list[datetime]],
) -> None:
    intake, recorder, now = watched
    body, key = fresh_body(), uuid.uuid4().hex

    first = await intake.submit(body, key=key)
    assert first.status_code == 202, first.text
    appeal_id = first.json()["appeal_id"]
    submit = recorder.take()
    # Reserve the key; hold the slot, record the appeal and make the appellant's pseudonym
    # (together); mark it acknowledged (an insert of its own). No evasion look-up without
    # hashes; no answer stored apart for replays.
    assert [name for name, _ in submit] == ["insert", "insert", "insert", "insert", "insert"]
    assert_by_id(submit)

    linked = await intake.submit(fresh_body(signals={"linked_account_hashes": ["h-12345678"]}))
    assert linked.status_code == 202
    replay = await intake.submit(body, key=key)
    other_body = await intake.submit(fresh_body(), key=key)
    same_item = await intake.submit(body)
    assert (replay.status_code, other_body.status_code, same_item.status_code) == (202, 422, 409)
    view = await intake.client.get(f"/v1/appeals/{appeal_id}", headers=intake.headers())
    assert view.status_code == 200
    assert_by_id(recorder.take())

    projection = StatusProjection(intake.repository, intake.intake.erasures)
    submitted = lifecycle(appeal_id, "submitted", submitted=events_pb2.AppealSubmitted())
    await projection.handle(submitted)
    routed = lifecycle(appeal_id, "routed", routed=events_pb2.AppealRouted(queue="q"))
    await projection.handle(routed)
    upheld = events_pb2.AppealDecided(outcome=appeal_pb2.OUTCOME_UPHELD)
    decided = lifecycle(appeal_id, "decided", decided=upheld)
    await projection.handle(decided)
    await projection.handle(decided)  # redelivered
    events = recorder.take()
    assert_by_id(events)
    # Submitted: the listing by reception time, then the mark (an insert, refused as a duplicate
    # once intake set it); routed: one insert of its status change (the appeal is known from its
    # submitted event: nothing is read); decided: the insert of its change, then the slot its
    # record names read and freed by _id; redelivered: nothing inserted (known applied), the
    # slot read and freed again.
    assert [(name, command.get(name)) for name, command in events] == [
        ("update", "received_by_slot"),
        ("insert", "acknowledgements"),
        ("insert", "appeal_status_entries"),
        ("insert", "appeal_status_entries"),
        ("find", "appeals"),
        ("delete", "open_appeals"),
        ("find", "appeals"),
        ("delete", "open_appeals"),
    ]
    again = await intake.submit(body | {"statement": "A new appeal once the first was answered."})
    assert again.status_code == 202, again.text

    now[0] += timedelta(minutes=11)  # every key so far has expired
    await intake.intake.flush_key_expiries()
    assert await intake.intake.sweep_expired_keys() == 0  # their minutes are still to pass
    now[0] += timedelta(minutes=3)
    # Three keys led to appeals; the one refused for the open item was given back at once.
    assert await intake.intake.sweep_expired_keys() == 3
    assert await intake.intake.sweep_expired_keys() == 0
    assert_by_id(recorder.take())


async def test_the_sweep_deletes_expired_keys_only_and_what_it_reads_is_what_expired(
    watched: tuple[IntakeUnderTest, Recorder, list[datetime]], db: store.Database
) -> None:
    intake, recorder, now = watched
    expiring = [uuid.uuid4().hex for _ in range(3)]
    for key in expiring:
        assert (await intake.submit(fresh_body(), key=key)).status_code == 202
    await intake.intake.flush_key_expiries()
    now[0] += timedelta(minutes=8)
    live = uuid.uuid4().hex
    assert (await intake.submit(fresh_body(), key=live)).status_code == 202
    now[0] += timedelta(minutes=5)  # the first three expired; the last one has not
    recorder.take()

    assert await intake.intake.sweep_expired_keys() == 3
    sweep = recorder.take()
    assert_by_id(sweep)
    deleted = [query for name, command in sweep if name == "delete"
               for query in filters(name, command)]  # fmt: skip
    # The keys read and deleted are those noted as expiring in the minutes that passed.
    assert sum(len(query["_id"]["$in"]) for query in deleted if "expires_at" in query) == 3
    keys = db[repository.IDEMPOTENCY_KEYS]
    gone = [f"surface-tests\x1f{key}" for key in expiring]
    assert await keys.find({"_id": {"$in": gone}}).to_list() == []
    assert await keys.find_one({"_id": f"surface-tests\x1f{live}"}) is not None
    # The buckets swept are deleted too; the one listing the live key stays until it is due.
    buckets = await db[repository.KEY_EXPIRIES].find({}).to_list()
    assert [b["scopes"] for b in buckets if b["_id"] != SWEPT_THROUGH] == [
        [f"surface-tests\x1f{live}"]
    ]


async def test_indexes_earlier_versions_created_are_dropped_and_none_are_created(
    db: store.Database,
) -> None:
    retired = [
        store.IndexSpec(repository.APPEALS, [("appellant_id", 1), ("received_at", -1)]),
        store.IndexSpec(repository.IDEMPOTENCY_KEYS, [("expires_at", 1)]),
        store.IndexSpec(repository.OPEN_APPEALS, [("appeal_id", 1)]),
    ]
    await store.ensure_indexes(db, retired)
    repo = repository.IntakeRepository(db)
    await repo.retire_indexes()
    await repo.retire_indexes()  # again: nothing left to drop is fine
    for collection, _ in repository.RETIRED_INDEXES:
        names = [index["name"] async for index in await db[collection].list_indexes()]
        assert names == ["_id_"], (collection, names)
    assert repository.INDEXES == []


async def test_documents_in_the_shapes_of_earlier_versions_are_read_as_they_are(
    intake: IntakeUnderTest, db: store.Database
) -> None:
    """A key with its answer stored apart is replayed from it; an appeal whose record names no
    slot (and has no acknowledged mark) frees the slot its submission names when decided."""
    body, key = fresh_body(), uuid.uuid4().hex
    submission = AppealIn.model_validate(body).to_proto()
    now = store.stored_time(datetime.now(UTC))
    appeal_id = identity.new_appeal_id()
    await db[repository.IDEMPOTENCY_KEYS].insert_one({
        "_id": identity.idempotency_scope("surface-tests", key),
        "fingerprint": identity.fingerprint(submission), "appeal_id": appeal_id,
        "reserved_at": now, "expires_at": now + timedelta(hours=1),
        "response": {"appeal_id": appeal_id, "status": "received"},
    })  # fmt: skip
    await db[repository.APPEALS].insert_one({
        "_id": appeal_id, "surface": "surface-tests", "platform": "instagram",
        "appellant_id": submission.appellant.user_id,
        "submission": submission.SerializeToString(), "status": "received",
        "received_at": now, "updated_at": now, "applied_events": [],
    })  # fmt: skip
    slot = identity.open_appeal_slot(submission)
    await db[repository.OPEN_APPEALS].insert_one({"_id": slot, "appeal_id": appeal_id})

    replay = await intake.submit(body, key=key)
    assert (replay.status_code, replay.json()["appeal_id"]) == (202, appeal_id)
    view = await intake.client.get(f"/v1/appeals/{appeal_id}", headers=intake.headers())
    assert view.status_code == 200
    second = await intake.submit(body | {"statement": "Again, before the answer."})
    assert (second.status_code, second.json()["open_appeal_id"]) == (409, appeal_id)

    upheld = events_pb2.AppealDecided(outcome=appeal_pb2.OUTCOME_UPHELD)
    await StatusProjection(intake.repository, intake.intake.erasures).handle(
        lifecycle(appeal_id, "decided", decided=upheld)
    )
    assert await db[repository.OPEN_APPEALS].find_one({"_id": slot}) is None
    after = await intake.submit(body | {"statement": "A new appeal once the first was answered."})
    assert after.status_code == 202, after.text


async def test_the_status_projection_writes_only_the_listing_for_an_appeal_this_process_marked(
    watched: tuple[IntakeUnderTest, Recorder, list[datetime]],
) -> None:
    intake, recorder, _ = watched
    first = await intake.submit(fresh_body())
    assert first.status_code == 202, first.text
    appeal_id = first.json()["appeal_id"]
    recorder.take()
    projection = StatusProjection(
        intake.repository, intake.intake.erasures, intake.intake.acknowledged_here
    )
    submitted = lifecycle(appeal_id, "submitted", submitted=events_pb2.AppealSubmitted())
    await projection.handle(submitted)
    # Marked when the broker acknowledged: only the listing by reception time is written.
    assert [name for name, _ in recorder.take()] == ["update"]
    # Redelivered: no longer known here, so the mark is written again too (both no-ops: the
    # mark's insert is refused as a duplicate).
    await projection.handle(submitted)
    assert [name for name, _ in recorder.take()] == ["update", "insert"]
    view = await intake.client.get(f"/v1/appeals/{appeal_id}", headers=intake.headers())
    assert view.status_code == 200
