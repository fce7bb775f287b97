"""Routing and its agent desk on the test session's real store and broker, without intake: agents,
a clock the test moves, the shipped policy edited as a test needs it, submitted events routing
takes in, and a tap on a topic that sees only what the test caused.

The fixtures built from these (``clock``, ``routing``, ``lifecycle``) are in
``tests/integration/conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer

from appeals import topics
from appeals.events import derived_event_id, event_type, new_event
from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2, events_pb2
from appeals_runtime import store
from appeals_runtime.auth import Principal, Role, Scope
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.routing import main as routing_main
from services.routing import repository
from services.routing.policy_file import DEFAULT_POLICY_FILE, PolicySource
from services.routing.policy_schema import RoutingPolicy
from tests.support.particulars import APPELLANTS

UPHELD, OVERTURNED = appeal_pb2.OUTCOME_UPHELD, appeal_pb2.OUTCOME_OVERTURNED
LEASE = timedelta(minutes=5)


def agent(name: str, queues: Iterable[str] = ("*",), *, assistant: bool = False) -> Principal:
    return Principal(name, Role.AGENT, frozenset({Scope.WORK_CASES}), queues=frozenset(queues),
                     assistant=assistant)  # fmt: skip


class Clock:
    """A clock the test moves by hand: leases, SLAs and skill relaxation without sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, span: timedelta) -> None:
        self.now += span


def policy_with(
    changes: Callable[[dict[str, Any]], None] | None = None, *, registered_only: bool = False
) -> RoutingPolicy:
    """The shipped policy, edited as a test needs it.

    The shipped policy offers nothing to an agent that has not registered its skills and refuses
    decisions without facts (tested in ``test_routing_skills``); tests about other rules serve
    unregistered agents any case of their queues instead, unless ``registered_only``."""
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_FILE.read_text()))
    if not registered_only:
        data["agents"]["unregistered"] |= {"skills": "all", "facts_optional": True}
    if changes is not None:
        changes(data)
    return RoutingPolicy.model_validate(data)


def submission(
    *,
    platform: int = appeal_pb2.PLATFORM_INSTAGRAM,
    policy_name: str = "spam",
    action: str = "removed",
    locale: str = "en-US",
    country: str = "US",
    kind: int = appeal_pb2.SUBJECT_KIND_POST,
    decided_by: str = "classifier-1",
    content_hash: str = "",
    reach: int = 0,
    vulnerable: bool = False,
) -> appeal_pb2.AppealSubmission:
    return appeal_pb2.AppealSubmission(
        platform=platform,  # type: ignore[arg-type]
        appellant=appeal_pb2.Appellant(user_id=uuid.uuid4().hex[:12]),
        subject=appeal_pb2.Subject(
            kind=kind,  # type: ignore[arg-type]
            id=uuid.uuid4().hex[:10],
            content_hash=content_hash,
        ),
        decision=appeal_pb2.OriginalDecision(
            id=f"dec-{uuid.uuid4().hex[:8]}",
            policy=policy_name,
            action=action,
            decided_by=decided_by,
        ),
        statement="It was satire.",
        locale=locale,
        country=country,
        signals=appeal_pb2.Signals(account_reach=reach, vulnerable_user=vulnerable),
    )


def submitted_event(
    appeal: appeal_pb2.AppealSubmission,
    *,
    appeal_id: str | None = None,
    at: datetime | None = None,
    ban_evasion: bool = False,
) -> events_pb2.AppealEvent:
    """The submitted event intake would publish for ``appeal``: its facts only. Its particulars
    are registered with the stand-in for intake, for the desk to read on a claim."""
    appeal_id = appeal_id or f"ap_{uuid.uuid4().hex[:12]}"
    APPELLANTS.remember(appeal_id, appeal)
    return new_event(
        event_id=derived_event_id(appeal_id, "submitted"),
        appeal_id=appeal_id,
        producer="tests",
        occurred_at=at,
        submitted=events_pb2.AppealSubmitted(
            facts=submission_facts(appeal), channel="rest", ban_evasion_suspected=ban_evasion
        ),
    )


def inbound(event: Any, topic: str = topics.APPEAL_LIFECYCLE.name) -> InboundMessage[Any]:
    return InboundMessage(topic, 0, 0, None, event, {}, 0)


async def route(
    parts: routing_main.RoutingParts,
    appeal: appeal_pb2.AppealSubmission | None = None,
    *,
    at: datetime | None = None,
    ban_evasion: bool = False,
) -> str:
    """Hand routing a submitted event as its consumer would; returns the appeal id."""
    event = submitted_event(appeal or submission(), at=at, ban_evasion=ban_evasion)
    await parts.handler(inbound(event))
    return event.appeal_id


async def build_routing(
    db: store.Database,
    producer: EventProducer,
    clock: Clock,
    policy: RoutingPolicy | None = None,
    *,
    lease: timedelta = LEASE,
    bootstrap_servers: str | None = None,
) -> routing_main.RoutingParts:
    """A routing instance on ``db``; with ``bootstrap_servers`` it has a case feed, which
    :func:`running_feed` runs (the desk then sees what other instances route)."""
    await store.ensure_indexes(db, repository.INDEXES)
    return routing_main.assemble(
        db, producer, PolicySource(policy or policy_with()), APPELLANTS, lease=lease, clock=clock,
        bootstrap_servers=bootstrap_servers,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def running_feed(parts: routing_main.RoutingParts) -> AsyncIterator[None]:
    """Run the instance's case feed while the block runs (from where the topic ends now)."""
    assert parts.feed is not None, "assemble the instance with bootstrap_servers"
    task = asyncio.create_task(parts.feed.run())
    try:
        await asyncio.wait_for(parts.feed.started.wait(), 30)
        yield
    finally:
        await parts.feed.stop()
        await task


async def eventually(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    """Wait until ``condition()`` holds (it checks in-memory state: polled, not slept on)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


class EventTap:
    """Reads a topic from where it ended when the tap opened: only what the test caused."""

    def __init__(self, bootstrap_servers: str, topic: topics.Topic[Any]) -> None:
        self._topic = topic
        self._consumer = AIOKafkaConsumer(
            topic.name, bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
        )
        self.seen: list[Any] = []

    async def __aenter__(self) -> EventTap:
        await self._consumer.start()
        for _ in range(50):  # without a group, every partition is assigned once metadata is in
            if self._consumer.assignment():
                break
            await asyncio.sleep(0.1)
        partitions = sorted(self._consumer.assignment())
        assert partitions, f"topic {self._topic.name} has no partitions"
        for tp, offset in (await self._consumer.end_offsets(partitions)).items():
            self._consumer.seek(tp, offset)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def until(self, done: Callable[[list[Any]], bool], timeout_s: float = 10) -> list[Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not done(self.seen):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; saw {[_describe(m) for m in self.seen]}")
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self.seen.extend(self._topic.decode(r.value) for r in records)
        return self.seen


def _describe(message: Any) -> str:
    if isinstance(message, events_pb2.AppealEvent):
        return f"{message.appeal_id}:{event_type(message)}"
    return type(message).__name__


def of(events: list[Any], appeal_id: str, kind: str | None = None) -> list[events_pb2.AppealEvent]:
    """Distinct events (by id) of one appeal, optionally of one type, in order."""
    found: dict[str, events_pb2.AppealEvent] = {}
    for event in events:
        if event.appeal_id == appeal_id and (kind is None or event_type(event) == kind):
            found.setdefault(event.event_id, event)
    return list(found.values())
