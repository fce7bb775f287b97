"""Each routing rule, through routing's real consumer on the real broker and store; the policy
file reloaded while the consumer runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from appeals import topics
from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.kafka.consumer import ConsumerRunner
from appeals_runtime.kafka.producer import EventProducer
from services.routing import main as routing_main
from services.routing import repository
from services.routing.model import CaseState
from services.routing.policy_file import DEFAULT_POLICY_FILE, PolicySource
from tests.support.desk import Clock, EventTap, of, policy_with, submission, submitted_event
from tests.support.kafka import read_all, scratch_topic
from tests.support.particulars import APPELLANTS

pytestmark = pytest.mark.integration


class RunningRouting:
    """Routing's consumer running against a scratch topic standing in for the lifecycle topic."""

    def __init__(self, parts: routing_main.RoutingParts, topic: topics.Topic[Any]) -> None:
        self.parts = parts
        self.topic = topic

    async def case(self, appeal_id: str, timeout_s: float = 15) -> CaseState:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            state = await self.parts.ledger.state(appeal_id)
            if state is not None:
                return state
            await asyncio.sleep(0.1)
        raise AssertionError(f"{appeal_id} was never routed")


@contextlib.asynccontextmanager
async def running_routing(
    infra: Infrastructure, db: store.Database, producer: EventProducer, policies: PolicySource
) -> AsyncIterator[RunningRouting]:
    await store.ensure_indexes(db, repository.INDEXES)
    parts = routing_main.assemble(
        db, producer, policies, APPELLANTS, lease=timedelta(minutes=5), clock=Clock()
    )
    topic = await scratch_topic(infra.kafka_bootstrap_servers)
    runner = ConsumerRunner(
        name="routing-test",
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"routing-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=parts.handler,
        producer=producer,
    )
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.started.wait(), 20)
    try:
        yield RunningRouting(parts, topic)
    finally:
        await runner.stop()
        await asyncio.wait_for(task, 20)


@pytest.fixture
async def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing_policy.yaml"
    path.write_text(DEFAULT_POLICY_FILE.read_text())
    return path


RULE_CASES: list[tuple[str, Callable[[], events_pb2.AppealEvent], str, str]] = [
    ("default", lambda: submitted_event(submission()), "default", "instagram.integrity.en"),
    (
        "child safety",
        lambda: submitted_event(submission(policy_name="child_safety", locale="de-DE")),
        "child_safety_specialists",
        "instagram.specialist.child_safety.de",
    ),
    (
        "vulnerable user",
        lambda: submitted_event(submission(vulnerable=True, locale="fr-FR")),
        "vulnerable_person",
        "instagram.vulnerable_people.fr",
    ),
    (
        "legal deadline",
        lambda: submitted_event(_with_deadline(submission(), timedelta(hours=20))),
        "legal_deadline",
        "instagram.legal_deadline.en",
    ),
    (
        "ban evasion",
        lambda: submitted_event(submission(), ban_evasion=True),
        "ban_evasion_suspected",
        "instagram.integrity_review.en",
    ),
    (
        "high reach",
        lambda: submitted_event(
            submission(kind=appeal_pb2.SUBJECT_KIND_PAGE, reach=3_000_000, action="disabled")
        ),
        "high_reach_account",
        "instagram.high_reach.en",
    ),
]


def _with_deadline(
    appeal: appeal_pb2.AppealSubmission, within: timedelta
) -> appeal_pb2.AppealSubmission:
    appeal.signals.legal_deadline.FromDatetime(datetime.now(UTC) + within)
    return appeal


async def test_every_rule_places_its_appeals_and_announces_them_once(
    infra: Infrastructure, db: store.Database, producer: EventProducer, policy_file: Path
) -> None:
    events = {name: build() for name, build, _, _ in RULE_CASES}
    async with (
        running_routing(infra, db, producer, PolicySource.load(policy_file)) as routing,
        EventTap(infra.kafka_bootstrap_servers, topics.APPEAL_LIFECYCLE) as lifecycle,
    ):
        for event in events.values():
            await producer.publish(routing.topic, event)
            await producer.publish(routing.topic, event)  # a redelivery changes nothing
        for name, _, rule, queue in RULE_CASES:
            state = await routing.case(events[name].appeal_id)
            assert (state.routing.rule, state.queue) == (rule, queue), name
        high_reach = await routing.case(events["high reach"].appeal_id)
        assert high_reach.routing.second_review
        legal = await routing.case(events["legal deadline"].appeal_id)
        assert legal.routing.sla_due_at <= datetime.now(UTC) + timedelta(hours=18)
        seen = await lifecycle.until(
            lambda seen: all(of(seen, e.appeal_id, "routed") for e in events.values())
        )
    for name, _, _, queue in RULE_CASES:
        (routed,) = of(seen, events[name].appeal_id, "routed")
        assert routed.routed.queue == queue
        assert routed.causation_id == events[name].event_id


async def test_a_repeat_appeal_of_the_same_decision_is_recognised(
    infra: Infrastructure, db: store.Database, producer: EventProducer
) -> None:
    first = submission()
    again = appeal_pb2.AppealSubmission()
    again.CopyFrom(first)
    async with running_routing(infra, db, producer, PolicySource(policy_with())) as routing:
        earlier = submitted_event(first)
        await producer.publish(routing.topic, earlier)
        await routing.case(earlier.appeal_id)
        later = submitted_event(again)
        await producer.publish(routing.topic, later)
        state = await routing.case(later.appeal_id)
    assert "+5 repeat appeal of the same decision" in state.routing.reasons


async def test_a_submitted_event_without_an_appeal_id_is_dead_lettered(
    infra: Infrastructure, db: store.Database, producer: EventProducer
) -> None:
    broken = submitted_event(submission())
    broken.appeal_id = ""
    fine = submitted_event(submission())
    async with running_routing(infra, db, producer, PolicySource(policy_with())) as routing:
        await producer.publish(routing.topic, broken)
        await producer.publish(routing.topic, fine)
        await routing.case(fine.appeal_id)
        dead = await read_all(infra.kafka_bootstrap_servers, routing.topic.dlq, expect=1)
    assert len(dead) == 1
    assert dict(dead[0].headers)["dlq.error.field"] == b"appeal_id"


async def test_the_policy_file_is_reloaded_while_routing_runs(
    infra: Infrastructure, db: store.Database, producer: EventProducer, policy_file: Path
) -> None:
    policies = PolicySource.load(policy_file)
    async with running_routing(infra, db, producer, policies) as routing:
        before = submitted_event(submission(policy_name="copyright"))
        await producer.publish(routing.topic, before)
        assert (await routing.case(before.appeal_id)).queue == "instagram.intellectual_property.en"

        add_rule_first(
            policy_file,
            {"name": "ip_to_legal", "when": {"policy_areas": ["intellectual_property"]},
             "queue": "legal"},
        )  # fmt: skip
        await policies.poll()

        after = submitted_event(submission(policy_name="copyright", country="DE"))
        await producer.publish(routing.topic, after)
        state = await routing.case(after.appeal_id)
        assert (state.routing.rule, state.queue) == ("ip_to_legal", "legal.EU")
        # Cases already placed keep their placement.
        assert (await routing.case(before.appeal_id)).queue == "instagram.intellectual_property.en"


def add_rule_first(path: Path, rule: dict[str, Any]) -> None:
    data = yaml.safe_load(path.read_text())
    data["rules"].insert(0, rule)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    os.utime(path, ns=(1, 4_000_000_000_000_000_000))  # a new mtime even within one clock tick
