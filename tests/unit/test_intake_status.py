"""How lifecycle events move intake's status view (pure)."""

from __future__ import annotations

from appeals.events import new_event
from appeals.v1 import appeal_pb2, events_pb2
from services.intake.model import status_change


def event(**payload: object) -> events_pb2.AppealEvent:
    return new_event(event_id="e", appeal_id="ap_1", producer="tests", **payload)  # type: ignore[arg-type]


def test_each_lifecycle_step_maps_to_the_documented_status() -> None:
    cases = {
        "routed": event(routed=events_pb2.AppealRouted(queue="instagram.general.en")),
        "in_review": event(claimed=events_pb2.CaseClaimed(agent_id="a")),
        "decided": event(decided=events_pb2.AppealDecided(outcome=appeal_pb2.OUTCOME_OVERTURNED)),
        "escalated": event(
            escalated=events_pb2.AppealEscalated(target="senior", to_queue="senior.en")
        ),
    }
    for status, lifecycle_event in cases.items():
        change = status_change(lifecycle_event)
        assert change is not None and change.status == status
    decided = status_change(cases["decided"])
    assert decided is not None and decided.fields == {"outcome": "overturned"}
    escalated = status_change(cases["escalated"])
    assert escalated is not None and escalated.fields["queue"] == "senior.en"


def test_a_released_or_transferred_case_is_routed_again_and_notifications_change_nothing() -> None:
    released = status_change(event(released=events_pb2.CaseReleased(agent_id="a")))
    transferred = status_change(event(transferred=events_pb2.CaseTransferred(to_queue="q2")))
    assert released is not None and released.status == "routed"
    assert transferred is not None and transferred.fields["queue"] == "q2"
    assert status_change(event(notified=events_pb2.AppellantNotified(kind="decided"))) is None
