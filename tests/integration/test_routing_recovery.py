"""A routing instance that dies between recording a change and announcing it: whoever touches
the case next, or the instance that starts up or takes over its partition, announces it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.errors import Conflict
from appeals_runtime.kafka.producer import EventProducer
from services.routing import case_rules
from services.routing import main as routing_main
from services.routing.ownership import partition_for
from tests.support.desk import (
    LEASE,
    UPHELD,
    Clock,
    EventTap,
    agent,
    build_routing,
    of,
    route,
    running_feed,
)

pytestmark = pytest.mark.integration


async def _claim_and_die(routing: routing_main.RoutingParts, clock: Clock) -> str:
    """Route a case, then record a claim the way a dying instance would: the record is in the
    store, its event never went out and the view was never saved."""
    appeal_id = await route(routing)
    state = await routing.ledger.state(appeal_id)
    assert state is not None
    record = case_rules.claim(state, "ghost", clock.now, LEASE)
    assert record is not None and await routing.repository.append(record)
    return appeal_id


async def test_an_instance_starting_up_announces_what_a_dead_one_recorded(
    db: store.Database,
    producer: EventProducer,
    clock: Clock,
    routing: routing_main.RoutingParts,
    lifecycle: EventTap,
    infra: Infrastructure,
) -> None:
    appeal_id = await _claim_and_die(routing, clock)
    restarted = await build_routing(
        db, producer, clock, bootstrap_servers=infra.kafka_bootstrap_servers
    )
    async with running_feed(restarted):  # fills the board from the open cases
        assert appeal_id in restarted.board
        report = await restarted.timers.sweep()
        assert (await restarted.timers.sweep()).recovered == 0  # once
    assert report.recovered == 1
    view = await restarted.repository.view(appeal_id)
    assert view is not None and view.version == 2
    assert view.hold is not None and view.hold.agent_id == "ghost"
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "claimed")))
    assert [e.claimed.agent_id for e in of(seen, appeal_id, "claimed")] == ["ghost"]


async def test_the_next_step_on_the_case_announces_it_and_is_checked_against_it(
    clock: Clock, routing: routing_main.RoutingParts, lifecycle: EventTap
) -> None:
    appeal_id = await _claim_and_die(routing, clock)
    # The board (and the view) still say "queued"; the store says the ghost holds it.
    with pytest.raises(Conflict, match="claimed by another reviewer"):
        await routing.desk.claim(agent("alice"), appeal_id)
    state = routing.board.get(appeal_id)
    assert state is not None and state.hold is not None and state.hold.agent_id == "ghost"
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "claimed")))
    assert [e.claimed.agent_id for e in of(seen, appeal_id, "claimed")] == ["ghost"]


class Assignment:
    """The partitions a group member holds, set by hand: which instance owns a case is what
    the test is about, not how the group coordinator gets there."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.owned: frozenset[int] = frozenset()

    def assignment_of(self, topic: str) -> tuple[frozenset[int], int]:
        return self.owned, self.partitions


async def test_a_lease_that_ran_out_while_another_instance_owned_the_case_expires_on_take_over(
    clock: Clock, routing: routing_main.RoutingParts, lifecycle: EventTap
) -> None:
    # The instance that owned the case died holding its partition; this one serves the desk
    # and sees the lease run out, but the case is not its to release until the group moves
    # the partition here.
    assignment = Assignment(partitions=4)
    routing.ownership.follow(assignment, "appeals.lifecycle.v1")
    appeal_id = await route(routing)
    await routing.desk.claim(agent("gone"), appeal_id)
    clock.advance(LEASE + timedelta(seconds=1))
    assert (await routing.timers.sweep()).leases_expired == 0  # not this instance's case

    assignment.owned = frozenset({partition_for(appeal_id, assignment.partitions)})
    assert (await routing.timers.sweep()).leases_expired == 1
    assert (await routing.timers.sweep()).leases_expired == 0  # once
    await routing.desk.claim(agent("next"), appeal_id)
    await routing.desk.decide(
        agent("next"), appeal_id, outcome=UPHELD, rationale="Checked.", policy_cited="spam"
    )
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "decided")))
    assert [(e.released.agent_id, e.released.reason) for e in of(seen, appeal_id, "released")] == [
        ("gone", "lease_expired")
    ]
