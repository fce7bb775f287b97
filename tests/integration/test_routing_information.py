"""Requests for information on the real store and broker: the case waits off the desk with its
SLA paused, and returns to its queue when the appellant answers (intake's info_provided) or when
the policy's window ends without an answer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from appeals.events import derived_event_id, new_event
from appeals.v1 import events_pb2
from appeals_runtime.errors import Conflict, ValidationFailed
from services.routing import main as routing_main
from services.routing.announcements import info_requested_event_id
from services.routing.model import Status
from tests.support.desk import Clock, EventTap, agent, inbound, of, route

pytestmark = pytest.mark.integration

REVIEWER = agent("asker")
QUESTION = "Please send a screenshot of the original post."


async def ask(routing: routing_main.RoutingParts) -> str:
    appeal_id = await route(routing)
    await routing.desk.claim(REVIEWER, appeal_id)
    waiting = await routing.desk.request_information(REVIEWER, appeal_id, question=QUESTION)
    assert waiting.status == Status.AWAITING_INFO
    return appeal_id


def answer(appeal_id: str, request_event_id: str) -> events_pb2.AppealEvent:
    return new_event(
        event_id=derived_event_id(appeal_id, "info_provided", request_event_id),
        appeal_id=appeal_id,
        producer="intake",
        info_provided=events_pb2.InformationProvided(request_event_id=request_event_id),
    )


async def test_the_request_is_announced_and_the_case_waits_off_the_desk(
    routing: routing_main.RoutingParts, lifecycle: EventTap, clock: Clock
) -> None:
    appeal_id = await route(routing)
    with pytest.raises(Conflict, match="claim"):
        await routing.desk.request_information(REVIEWER, appeal_id, question=QUESTION)
    await routing.desk.claim(REVIEWER, appeal_id)
    with pytest.raises(ValidationFailed, match="question"):
        await routing.desk.request_information(REVIEWER, appeal_id, question="  ")
    await routing.desk.request_information(REVIEWER, appeal_id, question=QUESTION)

    assert appeal_id not in [c.appeal_id for c in await routing.desk.open_cases(None)]
    with pytest.raises(Conflict, match="waits for the appellant"):
        await routing.desk.claim(agent("another"), appeal_id)
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "info_requested")))
    (requested,) = of(seen, appeal_id, "info_requested")
    assert requested.info_requested.question == QUESTION
    assert requested.info_requested.agent_id == "asker"
    due = requested.info_requested.respond_by.ToDatetime().replace(tzinfo=clock.now.tzinfo)
    assert abs(due - (clock.now + timedelta(days=14))) < timedelta(seconds=1)


async def test_an_answer_returns_the_case_to_its_queue_with_its_sla_moved_by_the_wait(
    routing: routing_main.RoutingParts, lifecycle: EventTap, clock: Clock
) -> None:
    appeal_id = await ask(routing)
    asked = await routing.ledger.state(appeal_id)
    assert asked is not None and asked.info_request is not None
    request_id = info_requested_event_id(appeal_id, asked.info_request.seq)

    clock.advance(timedelta(days=2))
    await routing.handler(inbound(answer(appeal_id, "some-other-request")))
    still = await routing.ledger.state(appeal_id)
    assert still is not None and still.status == Status.AWAITING_INFO

    await routing.handler(inbound(answer(appeal_id, request_id)))
    back = await routing.ledger.state(appeal_id)
    assert back is not None and back.status == Status.QUEUED and back.info_request is None
    assert back.sla_paused > timedelta(0)
    assert back.sla_due_at == back.routing.sla_due_at + back.sla_paused
    assert appeal_id in [c.appeal_id for c in await routing.desk.open_cases(None)]
    await routing.handler(inbound(answer(appeal_id, request_id)))  # a redelivery: nothing more
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "released")))
    assert [e.released.reason for e in of(seen, appeal_id, "released")] == ["information_provided"]


async def test_without_an_answer_in_time_the_case_returns_to_its_queue(
    routing: routing_main.RoutingParts, lifecycle: EventTap, clock: Clock
) -> None:
    appeal_id = await ask(routing)
    clock.advance(timedelta(days=13))
    await routing.timers.sweep()
    waiting = await routing.ledger.state(appeal_id)
    assert waiting is not None and waiting.status == Status.AWAITING_INFO
    # Past the SLA due time, yet no warning or breach: the clock stood still.
    assert not waiting.sla_warned and not waiting.sla_breached

    clock.advance(timedelta(days=1, seconds=1))
    report = await routing.timers.sweep()
    assert report.sla_warnings == 0 and report.sla_breaches == 0
    back = await routing.ledger.state(appeal_id)
    assert back is not None and back.status == Status.QUEUED
    assert back.sla_paused >= timedelta(days=14)
    seen = await lifecycle.until(lambda seen: bool(of(seen, appeal_id, "released")))
    assert [e.released.reason for e in of(seen, appeal_id, "released")] == [
        "information_not_provided"
    ]
    # A late answer changes nothing here (the reviewer still reads it, from intake).
    assert waiting.info_request is not None
    late = answer(appeal_id, info_requested_event_id(appeal_id, waiting.info_request.seq))
    await routing.handler(inbound(late))
    after = await routing.ledger.state(appeal_id)
    assert after is not None and after.version == back.version
