"""Two routing instances in one consumer group, many agents claiming at once, one instance
killed midway (its consumer, timers and agents cancelled where they stand): no case is claimed
by two agents at once, none is lost, every one is decided exactly once."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from appeals import topics
from appeals.v1 import appeal_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.auth import PermissionDenied
from appeals_runtime.errors import Conflict, NotFound, TransientError
from appeals_runtime.kafka.consumer import ConsumerRunner
from appeals_runtime.kafka.producer import EventProducer
from services.routing import main as routing_main
from services.routing import repository
from services.routing.model import CaseRecord, Kind, Status
from services.routing.policy_file import PolicySource
from tests.support.desk import EventTap, agent, of, policy_with, submission, submitted_event
from tests.support.kafka import scratch_topic
from tests.support.particulars import APPELLANTS

pytestmark = pytest.mark.integration

APPEALS = 24
AGENTS_PER_INSTANCE = 5
LEASE = timedelta(seconds=2)


@dataclass
class Instance:
    name: str
    parts: routing_main.RoutingParts
    runner: ConsumerRunner
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def kill(self) -> None:
        for task in self.tasks:
            task.cancel()


async def sweep_forever(parts: routing_main.RoutingParts) -> None:
    while True:
        await parts.timers.sweep()
        await asyncio.sleep(0.5)


async def work(parts: routing_main.RoutingParts, name: str, decided: list[str]) -> None:
    """An agent: claims what it is offered, and now and then grabs any open case it sees."""
    reviewer = agent(name)
    stream = uuid.uuid4().hex
    rng = random.Random(name)
    while True:
        targets = [o.case.appeal_id for o in await parts.desk.next_offers(reviewer, None, stream)]
        if rng.random() < 0.3:  # and races the others for whatever is open
            targets += [case.appeal_id for case in await parts.desk.open_cases(None, 5)]
        for appeal_id in targets:
            try:
                await parts.desk.claim(reviewer, appeal_id)
                await asyncio.sleep(rng.random() * 0.05)
                await parts.desk.decide(
                    reviewer, appeal_id, outcome=appeal_pb2.OUTCOME_UPHELD,
                    rationale="Checked.", policy_cited="spam",
                )  # fmt: skip
                decided.append(appeal_id)
            except (Conflict, NotFound, PermissionDenied, TransientError):
                continue  # someone else was faster, or the lease ran out
        await asyncio.sleep(0.3)


async def eventually(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def claims_never_overlap(records: Iterable[CaseRecord]) -> bool:
    """Every claim after the first follows a release (by the agent or on lease expiry) or
    comes after the previous holder's lease ran out (the rules let a lapsed hold be claimed
    before the owner's timer recorded its release)."""
    held_until: datetime | None = None  # None: nobody holds the case
    for record in records:
        if record.kind in (Kind.CLAIMED, Kind.HEARTBEAT):
            if record.kind == Kind.CLAIMED and held_until is not None and record.at < held_until:
                return False
            held_until = record.lease_expires_at
        elif record.kind in (Kind.RELEASED, Kind.REVIEWED, Kind.ESCALATED, Kind.TRANSFERRED):
            held_until = None
    return True


async def test_two_instances_many_agents_one_killed_no_double_claims_and_no_lost_cases(
    infra: Infrastructure, db: store.Database, producer: EventProducer
) -> None:
    await store.ensure_indexes(db, repository.INDEXES)
    topic = await scratch_topic(infra.kafka_bootstrap_servers)
    # The killed instance's agents leave reservations behind; they lapse after the offer TTL.
    policies = PolicySource(policy_with(lambda data: data["agents"].update(offer_ttl="2s")))
    group = f"routing-{uuid.uuid4().hex[:8]}"
    decided: list[str] = []
    instances = []
    for name in ("a", "b"):
        # Events a killed instance recorded but never published go out a second later.
        parts = routing_main.assemble(
            db, producer, policies, APPELLANTS, lease=LEASE,
            bootstrap_servers=infra.kafka_bootstrap_servers,
        )  # fmt: skip
        runner = ConsumerRunner(
            name=f"routing-{name}", bootstrap_servers=infra.kafka_bootstrap_servers,
            group_id=group, topics=[topic], handler=parts.handler, producer=producer,
        )  # fmt: skip
        # Each instance's timers look after the cases of the partitions its consumer owns, and
        # its board learns what the other instance changes through the case feed.
        parts.ownership.follow(runner, topic.name)
        assert parts.feed is not None
        instance = Instance(name, parts, runner)
        instance.tasks.append(asyncio.create_task(parts.feed.run()))
        await asyncio.wait_for(parts.feed.started.wait(), 20)
        instance.tasks.append(asyncio.create_task(runner.run()))
        instance.tasks.append(asyncio.create_task(sweep_forever(parts)))
        instance.tasks += [
            asyncio.create_task(work(parts, f"agent-{name}{i}", decided))
            for i in range(AGENTS_PER_INSTANCE)
        ]
        instances.append(instance)
    a, b = instances
    events = [submitted_event(submission()) for _ in range(APPEALS)]
    appeal_ids = {event.appeal_id for event in events}
    try:
        await asyncio.wait_for(asyncio.gather(a.runner.started.wait(), b.runner.started.wait()), 20)
        async with EventTap(infra.kafka_bootstrap_servers, topics.APPEAL_LIFECYCLE) as lifecycle:
            for event in events[: APPEALS // 2]:
                await producer.publish(topic, event)
            await eventually(lambda: len(set(decided) & appeal_ids) >= APPEALS // 4)
            a.kill()  # mid-flight: its agents hold claims, its consumer holds partitions
            for event in events[APPEALS // 2 :]:
                await producer.publish(topic, event)
            seen = await lifecycle.until(
                lambda seen: all(of(seen, appeal_id, "decided") for appeal_id in appeal_ids),
                timeout_s=60,
            )

            # A case's view is saved after its events are announced: wait for the last ones
            # before stopping the survivor (one killed in between would leave them to the
            # catch-up of the next start).
            deadline = asyncio.get_running_loop().time() + 30
            for appeal_id in appeal_ids:
                while (state := await b.parts.ledger.state(appeal_id)) is None or (
                    state.status != Status.DECIDED
                ):
                    assert asyncio.get_running_loop().time() < deadline, (appeal_id, state)
                    await asyncio.sleep(0.05)
    finally:
        for instance in instances:
            instance.kill()
        await asyncio.gather(*(t for i in instances for t in i.tasks), return_exceptions=True)

    for appeal_id in appeal_ids:  # none lost: every view said decided above
        records = await b.parts.repository.records(appeal_id)
        assert claims_never_overlap(records), [(r.kind, r.agent_id) for r in records]
        claims = [r for r in records if r.kind == Kind.CLAIMED]
        decisions = [r for r in records if r.kind == Kind.DECIDED]
        assert len(decisions) == 1 and decisions[0].agent_id == claims[-1].agent_id
        assert len(of(seen, appeal_id, "decided")) == 1
    assert len(decided) == len(set(decided))  # no agent was told it decided a case twice
