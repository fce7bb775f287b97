"""The audit log against the real broker and store: once per event, in order, tamper-evident."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals.v1 import appeal_pb2, commands_pb2, events_pb2
from appeals_devstack import devkeys
from appeals_devstack.stack import Infrastructure
from appeals_runtime import events, store, topics
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.kafka.producer import EventProducer
from services.audit import api, chain, records
from services.audit.config import AuditSettings
from services.audit.consumer import audit_consumer
from services.audit.repository import AUDIT_LOG, INDEXES, AuditRepository

pytestmark = pytest.mark.integration

RESTORE_TOPIC = topics.restore_commands_topic(appeal_pb2.PLATFORM_FACEBOOK)


@pytest.fixture
async def audit_log(db: store.Database) -> AuditRepository:
    await store.ensure_indexes(db, INDEXES)
    return AuditRepository(db)


def new_appeal_id() -> str:
    return f"appeal-{uuid.uuid4().hex[:12]}"


def lifecycle(appeal_id: str) -> list[events_pb2.AppealEvent]:
    """submitted → routed → claimed → decided → notified, as the services would publish them."""
    start = datetime.now(UTC)
    payloads: list[tuple[str, str, Any]] = [
        ("intake", "submitted", events_pb2.AppealSubmitted(channel="rest", surface="fb")),
        ("routing", "routed", events_pb2.AppealRouted(queue="facebook.en", priority=2)),
        ("routing", "claimed", events_pb2.CaseClaimed(agent_id="agent-7", queue="facebook.en")),
        ("routing", "decided", events_pb2.AppealDecided(outcome=appeal_pb2.OUTCOME_OVERTURNED)),
        ("notifications", "notified", events_pb2.AppellantNotified(kind="decided")),
    ]
    built: list[events_pb2.AppealEvent] = []
    for step, (producer, field, payload) in enumerate(payloads):
        built.append(
            events.new_event(
                event_id=events.derived_event_id(appeal_id, field),
                appeal_id=appeal_id,
                producer=producer,
                causation_id=built[-1].event_id if built else "",
                occurred_at=start + timedelta(milliseconds=step),
                **{field: payload},
            )
        )
    return built


def restore_command(decided: events_pb2.AppealEvent) -> commands_pb2.RestoreCommand:
    command = commands_pb2.RestoreCommand(
        command_id=events.derived_event_id(decided.event_id, "restore"),
        appeal_id=decided.appeal_id,
        causation_id=decided.event_id,
        platform=appeal_pb2.PLATFORM_FACEBOOK,
    )
    command.issued_at.GetCurrentTime()
    return command


def logged(event: events_pb2.AppealEvent) -> chain.LoggedEvent:
    return records.from_lifecycle_event(event, topic=topics.APPEAL_LIFECYCLE.name)


async def wait_for_trail(audit_log: AuditRepository, appeal_id: str, *, entries: int) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while len(await audit_log.trail(appeal_id)) < entries:
        assert asyncio.get_running_loop().time() < deadline, "the audit consumer fell behind"
        await asyncio.sleep(0.1)


# Tampering straight in the store, each undoable so one log serves every case ----------------


@dataclass(frozen=True)
class Tampering:
    name: str
    # Tampers with the entries at the given indexes; returns how to undo it.
    apply: Callable[[store.Collection, list[int]], Awaitable[Callable[[], Awaitable[None]]]]
    # Which of the given indexes verification must name first, and its problem.
    detected_at: int
    problem: str


async def _set_field(
    log: store.Collection, index: int, field: str, value: Any
) -> Callable[[], Awaitable[None]]:
    original = await log.find_one({"_id": index})
    assert original is not None
    await log.update_one({"_id": index}, {"$set": {field: value}})

    async def undo() -> None:
        await log.replace_one({"_id": index}, original)

    return undo


async def change_appeal_id(log: store.Collection, at: list[int]) -> Callable[[], Awaitable[None]]:
    return await _set_field(log, at[1], "appeal_id", "appeal-of-someone-else")


async def change_payload(log: store.Collection, at: list[int]) -> Callable[[], Awaitable[None]]:
    return await _set_field(log, at[2], "payload", base64.b64encode(b"rewritten").decode())


async def delete_entry(log: store.Collection, at: list[int]) -> Callable[[], Awaitable[None]]:
    original = await log.find_one({"_id": at[2]})
    assert original is not None
    await log.delete_one({"_id": at[2]})

    async def undo() -> None:
        await log.insert_one(original)

    return undo


async def swap_entries(log: store.Collection, at: list[int]) -> Callable[[], Awaitable[None]]:
    first = await log.find_one({"_id": at[1]})
    second = await log.find_one({"_id": at[3]})
    assert first is not None
    assert second is not None
    # Each keeps its index and takes the other's content, hashes included. The event id index
    # is unique, so park one event id while the contents cross over.
    await log.update_one({"_id": at[1]}, {"$set": {"event_id": "parked"}})
    await log.replace_one({"_id": at[3]}, {**first, "_id": at[3]})
    await log.replace_one({"_id": at[1]}, {**second, "_id": at[1]})

    async def undo() -> None:
        await log.update_one({"_id": at[1]}, {"$set": {"event_id": "parked"}})
        await log.replace_one({"_id": at[3]}, second)
        await log.replace_one({"_id": at[1]}, first)

    return undo


TAMPERINGS = [
    Tampering("appeal id changed", change_appeal_id, 1, chain.HASH_MISMATCH),
    Tampering("payload changed", change_payload, 2, chain.HASH_MISMATCH),
    Tampering("entry deleted", delete_entry, 2, chain.MISSING_ENTRY),
    Tampering("two entries swapped", swap_entries, 1, chain.BROKEN_LINK),
]


async def test_the_consumer_logs_each_event_once_in_order_and_tampering_is_located(
    infra: Infrastructure, producer: EventProducer, db: store.Database, audit_log: AuditRepository
) -> None:
    appeal_id = new_appeal_id()
    submitted, routed, claimed, decided, notified = lifecycle(appeal_id)
    restore = restore_command(decided)
    runner = audit_consumer(
        name="audit-test",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"audit-{uuid.uuid4().hex[:8]}",
        repository=audit_log,
        producer=producer,
    )
    running = asyncio.create_task(runner.run())
    try:
        # routed is delivered twice, as after a producer retry or a consumer crash; notified
        # shares the partition and comes after it, so once notified is logged the copy was seen.
        for event in (submitted, routed, claimed, routed, decided):
            await producer.publish(topics.APPEAL_LIFECYCLE, event)
        await producer.publish(RESTORE_TOPIC, restore)
        await producer.publish(RESTORE_TOPIC, restore)
        await producer.publish(topics.APPEAL_LIFECYCLE, notified)
        await wait_for_trail(audit_log, appeal_id, entries=6)
        await asyncio.sleep(0.5)  # room for a wrongful second entry to show up
    finally:
        await runner.stop()
        await running

    trail = await audit_log.trail(appeal_id)
    lifecycle_types = [e.type for e in trail if e.type != records.RESTORE_REQUESTED]
    assert lifecycle_types == ["submitted", "routed", "claimed", "decided", "notified"]
    assert Counter(e.event_id for e in trail) == Counter(
        [e.event_id for e in (submitted, routed, claimed, decided, notified)] + [restore.command_id]
    )
    assert [e.index for e in trail] == sorted(e.index for e in trail)
    restore_entry = next(e for e in trail if e.type == records.RESTORE_REQUESTED)
    assert restore_entry.producer == "tests"  # from the record's producer header
    untouched = await audit_log.verify()
    assert untouched.ok, untouched

    at = [entry.index for entry in trail if entry.type != records.RESTORE_REQUESTED]
    for tampering in TAMPERINGS:
        undo = await tampering.apply(db[AUDIT_LOG], at)
        result = await audit_log.verify()
        assert (result.ok, result.first_bad_index, result.problem) == (
            False,
            at[tampering.detected_at],
            tampering.problem,
        ), tampering.name
        await undo()
        assert await audit_log.verify() == untouched, f"undoing {tampering.name}"


async def test_two_appenders_racing_for_the_tail_keep_one_contiguous_chain(
    infra: Infrastructure, db: store.Database, audit_log: AuditRepository
) -> None:
    other_client = store.create_client(infra.mongodb_url, app_name="tests-second-appender")
    second_instance = AuditRepository(other_client[db.name])
    appeals = [new_appeal_id() for _ in range(6)]
    all_events = [logged(event) for appeal in appeals for event in lifecycle(appeal)]
    # Both instances see a third of the events as well: redelivery racing the first delivery.
    shared = all_events[::3]
    first_share = all_events[: len(all_events) // 2] + shared
    second_share = all_events[len(all_events) // 2 :] + shared
    try:
        outcomes = await asyncio.gather(
            *(audit_log.append(event) for event in first_share),
            *(second_instance.append(event) for event in second_share),
        )
    finally:
        await other_client.close()

    assert sum(outcomes) == len(all_events)  # every event appended by exactly one of them
    result = await audit_log.verify()
    assert result == chain.Verification(
        ok=True, entries=len(all_events), head_hash=result.head_hash
    )
    entries = await db[AUDIT_LOG].find({}, {"event_id": 1}).sort("_id", 1).to_list()
    assert [entry["_id"] for entry in entries] == list(range(len(all_events)))
    assert sorted(entry["event_id"] for entry in entries) == sorted(e.event_id for e in all_events)


# The REST API ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    ops: str
    surface: str
    ops_without_audit_scope: str


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Tokens, TokenVerifier]:
    key, jwks = devkeys.ensure(tmp_path)
    verifier = TokenVerifier.from_settings(AuditSettings(auth_jwks_file=jwks))
    minted = Tokens(
        ops=devkeys.mint_token(key, role="ops", subject="ops-1"),
        surface=devkeys.mint_token(key, role="surface", subject="s", platforms=["facebook"]),
        ops_without_audit_scope=devkeys.mint_token(
            key, role="ops", subject="ops-2", scopes=["appeals:read"]
        ),
    )
    return minted, verifier


@pytest.fixture
async def client(
    audit_log: AuditRepository, tokens: tuple[Tokens, TokenVerifier]
) -> AsyncIterator[httpx.AsyncClient]:
    app = api.create_app(audit_log, tokens[1])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_ops_read_an_appeals_trail_in_log_order(
    client: httpx.AsyncClient, audit_log: AuditRepository, tokens: tuple[Tokens, TokenVerifier]
) -> None:
    appeal_id, other_appeal = new_appeal_id(), new_appeal_id()
    mine = lifecycle(appeal_id)[:3]
    for event in (mine[0], lifecycle(other_appeal)[0], mine[1], mine[2]):
        assert await audit_log.append(logged(event))

    response = await client.get(f"/v1/appeals/{appeal_id}/trail", headers=bearer(tokens[0].ops))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["appeal_id"] == appeal_id
    assert [(e["index"], e["event_id"], e["type"]) for e in body["entries"]] == [
        (0, mine[0].event_id, "submitted"),
        (2, mine[1].event_id, "routed"),
        (3, mine[2].event_id, "claimed"),
    ]
    first = body["entries"][0]
    assert set(first) == {
        "index",
        "event_id",
        "type",
        "occurred_at",
        "recorded_at",
        "producer",
        "hash",
    }
    assert first["occurred_at"] == chain.rfc3339(events.occurred_at(mine[0]))
    assert first["producer"] == "intake"
    assert len(first["hash"]) == 64


async def test_the_trail_of_an_appeal_the_log_never_saw_is_a_404_problem(
    client: httpx.AsyncClient, tokens: tuple[Tokens, TokenVerifier]
) -> None:
    response = await client.get("/v1/appeals/nobody/trail", headers=bearer(tokens[0].ops))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_ops_verify_the_whole_log_and_learn_where_it_breaks(
    client: httpx.AsyncClient,
    db: store.Database,
    audit_log: AuditRepository,
    tokens: tuple[Tokens, TokenVerifier],
) -> None:
    for event in lifecycle(new_appeal_id()):
        await audit_log.append(logged(event))
    head = await db[AUDIT_LOG].find_one({"_id": 4})
    assert head is not None

    intact = await client.get("/v1/audit/verify", headers=bearer(tokens[0].ops))
    await db[AUDIT_LOG].update_one({"_id": 3}, {"$set": {"producer": "someone"}})
    broken = await client.get("/v1/audit/verify", headers=bearer(tokens[0].ops))

    assert intact.status_code == 200
    assert intact.json() == {
        "ok": True,
        "entries": 5,
        "head_hash": head["hash"],
        "first_bad_index": None,
        "problem": None,
    }
    assert broken.json() == {
        "ok": False,
        "entries": 5,
        "head_hash": head["hash"],
        "first_bad_index": 3,
        "problem": "hash mismatch",
    }


@pytest.mark.parametrize("path", ["/v1/appeals/some-appeal/trail", "/v1/audit/verify"])
async def test_only_ops_tokens_with_the_audit_scope_get_in(
    client: httpx.AsyncClient, tokens: tuple[Tokens, TokenVerifier], path: str
) -> None:
    anonymous = await client.get(path)
    surface = await client.get(path, headers=bearer(tokens[0].surface))
    unscoped = await client.get(path, headers=bearer(tokens[0].ops_without_audit_scope))
    forged = await client.get(path, headers=bearer(tokens[0].ops[:-4] + "AAAA"))

    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert forged.status_code == 401
    assert surface.status_code == 403
    assert unscoped.status_code == 403
    for response in (anonymous, surface, unscoped, forged):
        assert response.headers["content-type"] == "application/problem+json"
