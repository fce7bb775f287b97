"""Every lifecycle event type is decided on by every consumer: handled or ignored on purpose
(issue 15 item 2). A new payload in events.proto fails here until each service says what it
means for it."""

from __future__ import annotations

import pytest

from appeals.events import EVENT_TYPES, EventHandling
from services.audit.log import records
from services.intake import consumer as intake_consumer
from services.intake.model import STATUS_EVENTS
from services.notifications import inbound
from services.routing import consumer as routing_consumer

DECLARED = [intake_consumer.EVENTS, routing_consumer.EVENTS, inbound.EVENTS, records.EVENTS]


@pytest.mark.parametrize("declared", DECLARED, ids=lambda d: d.consumer)
def test_each_consumer_decides_on_every_event_type(declared: EventHandling) -> None:
    assert declared.undecided() == set(), f"{declared.consumer} has not decided on these"
    assert declared.contradictions() == set()


def test_a_new_event_type_is_undecided_until_declared() -> None:
    before = EventHandling("x", frozenset(EVENT_TYPES[:-1]), frozenset())
    assert before.undecided() == {EVENT_TYPES[-1]}
    assert EventHandling("x", frozenset({"nonsense"}), frozenset()).contradictions() == {"nonsense"}


def test_the_declarations_match_what_the_handlers_use() -> None:
    assert intake_consumer.EVENTS.handled >= STATUS_EVENTS
    assert set(inbound._NOTICE_KINDS) <= inbound.EVENTS.handled


def test_routing_skips_only_events_it_ignores_that_announce_no_case_change() -> None:
    assert routing_consumer.NOT_CASE_CHANGES.issubset(routing_consumer.EVENTS.ignored)
    # Everything routing publishes through its case ledger announces a case version.
    assert not routing_consumer.NOT_CASE_CHANGES & {"routed", "claimed", "decided", "released"}
