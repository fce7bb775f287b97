"""The agent desk against the real store and broker: exclusive claims, leases, decisions.

Also home of the helpers the other routing integration tests share (``test_routing_*.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer

from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store, topics
from appeals_runtime.auth import PermissionDenied, Principal, Role, Scope
from appeals_runtime.errors import Conflict, NotFound, ValidationFailed
from appeals_runtime.events import derived_event_id, event_type, new_event
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.privacy import submission_facts
from services.routing import main as routing_main
from services.routing import repository
from services.routing.model import Kind, Status
from services.routing.policy import AgentSkills
from services.routing.policy_file import DEFAULT_POLICY_FILE, PolicySource
from services.routing.policy_schema import RoutingPolicy
from tests.integration.particulars import APPELLANTS

pytestmark = pytest.mark.integration

UPHELD, OVERTURNED = appeal_pb2.OUTCOME_UPHELD, appeal_pb2.OUTCOME_OVERTURNED
LEASE = timedelta(minutes=5)

# --- shared helpers -------------------------------------------------------------------------


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


# --- fixtures -------------------------------------------------------------------------------


# Named fixtures, so the other routing test modules can import them without shadowing.
@pytest.fixture(name="clock")
def clock_fixture() -> Clock:
    return Clock()


@pytest.fixture(name="routing")
async def routing_fixture(
    db: store.Database, producer: EventProducer, clock: Clock
) -> routing_main.RoutingParts:
    return await build_routing(db, producer, clock)


@pytest.fixture(name="lifecycle")
async def lifecycle_fixture(infra: Infrastructure) -> AsyncIterator[EventTap]:
    async with EventTap(infra.kafka_bootstrap_servers, topics.APPEAL_LIFECYCLE) as tap:
        yield tap


# --- tests ----------------------------------------------------------------------------------


async def test_of_many_agents_racing_for_a_case_exactly_one_gets_it(
    routing: routing_main.RoutingParts,
) -> None:
    appeal_id = await route(routing)
    results = await asyncio.gather(
        *(routing.desk.claim(agent(f"agent-{i}"), appeal_id) for i in range(8)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    records = await routing.repository.records(appeal_id)
    assert [r.kind for r in records] == [Kind.ROUTED, Kind.CLAIMED]
    state = await routing.ledger.state(appeal_id)
    assert state is not None and state.hold is not None
    assert state.hold.agent_id == winners[0].hold.agent_id  # type: ignore[union-attr]


async def test_an_expired_lease_returns_the_case_to_its_queue_once(
    db: store.Database,
    producer: EventProducer,
    clock: Clock,
    routing: routing_main.RoutingParts,
    lifecycle: EventTap,
) -> None:
    other_instance = await build_routing(db, producer, clock)
    appeal_id = await route(routing)
    await routing.desk.claim(agent("first"), appeal_id)
    assert appeal_id not in [c.appeal_id for c in await routing.desk.open_cases(None)]
    with pytest.raises(Conflict):
        await routing.desk.claim(agent("second"), appeal_id)
    clock.advance(LEASE - timedelta(seconds=1))
    await routing.desk.heartbeat(agent("first"), appeal_id)  # extends the lease
    clock.advance(timedelta(minutes=1))
    assert (await routing.timers.sweep()).leases_expired == 0
    clock.advance(LEASE)
    # Both instances' timers see the expired lease; exactly one release is recorded.
    reports = await asyncio.gather(routing.timers.sweep(), other_instance.timers.sweep())
    assert sum(report.leases_expired for report in reports) == 1
    assert appeal_id in [c.appeal_id for c in await routing.desk.open_cases(None)]
    with pytest.raises(Conflict, match="lease ran out"):
        await routing.desk.heartbeat(agent("first"), appeal_id)
    await routing.desk.claim(agent("second"), appeal_id)
    with pytest.raises(Conflict):  # the first agent's lease is gone: it may not decide
        await routing.desk.decide(
            agent("first"), appeal_id, outcome=UPHELD, rationale="r", policy_cited="spam"
        )
    events = await lifecycle.until(lambda seen: len(of(seen, appeal_id, "claimed")) == 2)
    released = of(events, appeal_id, "released")
    assert [(e.released.agent_id, e.released.reason) for e in released] == [
        ("first", "lease_expired")
    ]


async def test_deciding_needs_the_claim_happens_once_and_an_overturn_commands_a_restore(
    routing: routing_main.RoutingParts, infra: Infrastructure, lifecycle: EventTap
) -> None:
    appeal_id = await route(routing)
    reviewer = agent("reviewer")
    decide = dict(outcome=OVERTURNED, rationale="Satire.", policy_cited="spam")
    with pytest.raises(Conflict):
        await routing.desk.decide(reviewer, appeal_id, **decide)  # type: ignore[arg-type]
    await routing.desk.claim(reviewer, appeal_id)
    topic = topics.restore_commands_topic(appeal_pb2.PLATFORM_INSTAGRAM)
    async with EventTap(infra.kafka_bootstrap_servers, topic) as restores:
        first = await routing.desk.decide(reviewer, appeal_id, **decide)  # type: ignore[arg-type]
        again = await routing.desk.decide(reviewer, appeal_id, **decide)  # type: ignore[arg-type]
        assert first.verdict == again.verdict and first.status == again.status == "decided"
        with pytest.raises(Conflict):
            await routing.desk.decide(
                reviewer,
                appeal_id,
                outcome=UPHELD,
                rationale="changed my mind",
                policy_cited="spam",
            )
        commands = await restores.until(lambda seen: any(c.appeal_id == appeal_id for c in seen))
    assert len({c.command_id for c in commands if c.appeal_id == appeal_id}) == 1
    events = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "decided")))
    (decided,) = of(events, appeal_id, "decided")
    assert decided.decided.agent_id == "reviewer"
    # An unregistered (older) client sent no facts: the case's own facts are on record, never
    # the appellant's statement (the facts are published in the statement of reasons).
    assert "was removed" in decided.decided.facts and "satire" not in decided.decided.facts


async def test_a_decision_says_whether_a_person_or_an_automated_assistant_made_it(
    routing: routing_main.RoutingParts, lifecycle: EventTap
) -> None:
    """The agent token's `reviewer` claim travels with the decision, in the case's stored record
    and its event, so that only people's decisions count as human review downstream."""
    by_person, by_assistant = await route(routing), await route(routing)
    person, assistant = agent("moderator-1"), agent("triage-bot", assistant=True)
    for reviewer, appeal_id in ((person, by_person), (assistant, by_assistant)):
        await routing.desk.claim(reviewer, appeal_id)
        await routing.desk.decide(
            reviewer, appeal_id, outcome=UPHELD, rationale="Spam.", policy_cited="spam",
            facts="The post links a scam shop.",
        )  # fmt: skip
    events = await lifecycle.until(
        lambda seen: bool(of(seen, by_person, "decided") and of(seen, by_assistant, "decided"))
    )
    assert [e.decided.by_assistant for e in of(events, by_person, "decided")] == [False]
    assert [e.decided.by_assistant for e in of(events, by_assistant, "decided")] == [True]
    stored = [r.verdict for r in await routing.repository.records(by_assistant) if r.verdict]
    assert [verdict.by_assistant for verdict in stored] == [True]


async def test_registered_agents_must_state_the_facts(routing: routing_main.RoutingParts) -> None:
    reviewer = agent("careful")
    anything = frozenset({"*"})
    skills = AgentSkills(anything, anything, anything, seniority="senior")
    await routing.desk.register(reviewer, skills, capacity=2)
    appeal_id = await route(routing)
    await routing.desk.claim(reviewer, appeal_id)
    with pytest.raises(ValidationFailed) as missing:
        await routing.desk.decide(
            reviewer, appeal_id, outcome=appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED,
            rationale="Label instead of removal.", policy_cited="spam",
        )  # fmt: skip
    assert [v.field for v in missing.value.violations] == ["facts"]
    result = await routing.desk.decide(
        reviewer, appeal_id, outcome=appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED,
        rationale="Label instead of removal.", policy_cited="spam",
        facts="The post links a scam shop; the text itself is commentary.",
    )  # fmt: skip
    assert result.case.status == Status.DECIDED
    assert result.verdict.facts.startswith("The post links")


async def test_agents_see_and_touch_only_their_queues(routing: routing_main.RoutingParts) -> None:
    appeal_id = await route(routing, submission(platform=appeal_pb2.PLATFORM_WHATSAPP))
    state = await routing.ledger.state(appeal_id)
    assert state is not None and state.queue == "whatsapp.integrity.en"
    outsider = agent("outsider", {"facebook.general.en"})
    assert appeal_id not in [
        c.appeal_id for c in await routing.desk.open_cases(["facebook.general.en"])
    ]
    offers = await routing.desk.next_offers(outsider, ["facebook.general.en"], "stream-1")
    assert appeal_id not in [o.case.appeal_id for o in offers]
    with pytest.raises(NotFound):
        await routing.desk.claim(outsider, appeal_id)
    with pytest.raises(PermissionDenied):
        routing.desk.queues_for(outsider, ["whatsapp.integrity.en"])


async def test_the_original_decider_is_never_offered_and_cannot_claim_the_appeal(
    routing: routing_main.RoutingParts,
) -> None:
    appeal_id = await route(routing, submission(decided_by="moderator-42"))
    decider, colleague = agent("moderator-42"), agent("moderator-43")
    offered = await routing.desk.next_offers(decider, None, "s-decider")
    assert appeal_id not in [o.case.appeal_id for o in offered]
    with pytest.raises(PermissionDenied, match="original decision"):
        await routing.desk.claim(decider, appeal_id)
    offered = await routing.desk.next_offers(colleague, None, "s-colleague")
    assert appeal_id in [o.case.appeal_id for o in offered]
    await routing.desk.claim(colleague, appeal_id)
    result = await routing.desk.decide(
        colleague, appeal_id, outcome=UPHELD, rationale="Spam.", policy_cited="spam"
    )
    assert result.verdict.agent_id == "moderator-43"
