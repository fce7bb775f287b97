"""The in-memory board of open cases: offer order, holds, copies, timers, versions (pure)."""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message as ProtoMessage

from appeals.v1 import appeal_pb2
from services.routing import case_rules, policy
from services.routing.board import CaseBoard
from services.routing.model import CaseRecord, CaseState, Hold, Kind, Offer, Routing, Status
from services.routing.policy_file import DEFAULT_POLICY_FILE, load_policy

RULES = load_policy(DEFAULT_POLICY_FILE)
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)


def case(appeal_id: str, *, priority: int = 10, at: datetime = T0, content: str = "") -> CaseState:
    submission = appeal_pb2.SubmissionFacts(
        platform=appeal_pb2.PLATFORM_FACEBOOK,
        decision=appeal_pb2.OriginalDecision(policy="spam", action="removed"),
        subject=appeal_pb2.Subject(content_hash=content),
        locale="en-US",
    )
    decision = policy.route(RULES, policy.AppealFacts(submission, at))
    record = CaseRecord(
        appeal_id, 1, Kind.ROUTED, at, placement=decision.placement, priority=priority,
        routing=Routing(
            submission=submission, received_at=at, rule=decision.rule, reasons=(),
            sla_due_at=at + timedelta(days=7), sla_warn_at=at + timedelta(days=6),
            second_review=False,
        ),
    )  # fmt: skip
    state = case_rules.fold([record])
    assert state is not None
    return state


def claimed(state: CaseState, agent: str, at: datetime = T0) -> CaseState:
    return replace(
        state,
        version=state.version + 1,
        status=Status.IN_REVIEW,
        hold=Hold(agent, state.version + 1, at + LEASE),
    )


def test_offers_come_most_urgent_first_then_oldest_and_only_while_queued() -> None:
    board = CaseBoard()
    old_low = case("a", priority=10, at=T0)
    urgent = case("b", priority=50, at=T0 + timedelta(minutes=2))
    new_low = case("c", priority=10, at=T0 + timedelta(minutes=1))
    for state in (old_low, urgent, new_low):
        board.put(state)
    now = T0 + timedelta(minutes=5)
    assert [c.appeal_id for c in board.offerable(None, now, 10)] == ["b", "a", "c"]
    assert [c.appeal_id for c in board.offerable(None, now, 2)] == ["b", "a"]
    board.put(claimed(urgent, "alice", now))
    assert [c.appeal_id for c in board.offerable(None, now, 10)] == ["a", "c"]
    assert board.held("alice", now) == 1
    # The lease runs out: offered again (the timer releases it shortly) and due for the timer.
    later = now + LEASE + timedelta(seconds=1)
    assert [c.appeal_id for c in board.offerable(None, later, 10)] == ["b", "a", "c"]
    assert board.held("alice", later) == 0
    assert board.due_leases(later) == ["b"]
    assert board.due_leases(later) == []  # popped once


def test_an_older_version_never_replaces_a_newer_one_and_a_closed_case_leaves() -> None:
    board = CaseBoard()
    first = case("a")
    taken = claimed(first, "alice")
    board.put(taken)
    board.put(first)  # a late read of version 1
    assert board.get("a") == taken
    assert board.knows("a", 2) and not board.knows("a", 3)
    decided = replace(taken, version=3, status=Status.DECIDED, hold=None)
    board.put(decided)
    assert "a" not in board and board.held("alice", T0) == 0
    assert board.knows("a", 3)  # the feed need not read it again
    board.announcing("b", 1)
    assert board.knows("b", 1) and not board.knows("b", 2)


def test_a_timer_entry_made_stale_by_a_later_change_is_skipped() -> None:
    board = CaseBoard()
    first = case("a")
    board.put(claimed(first, "alice"))
    # Claimed again after a release, with a later lease: the first expiry no longer applies.
    again = replace(claimed(first, "bob", T0 + timedelta(minutes=10)), version=4)
    board.put(again)
    assert board.due_leases(T0 + LEASE + timedelta(seconds=1)) == []
    assert board.due_leases(T0 + timedelta(minutes=10) + LEASE) == ["a"]


def test_a_rearmed_case_falls_due_again_once_per_step() -> None:
    board = CaseBoard()
    board.put(claimed(case("a"), "alice"))
    after = T0 + LEASE + timedelta(seconds=1)
    assert board.due_leases(after) == ["a"]
    assert board.due_leases(after) == []  # popped: another instance's case is dropped here
    board.rearm("a")  # ... and armed again when this instance takes it over
    board.rearm("a")
    assert board.due_leases(after) == ["a"]


def test_sla_steps_come_due_warning_first_then_breach() -> None:
    board = CaseBoard()
    state = case("a")
    board.put(state)
    assert board.due_sla(T0 + timedelta(days=5)) == []
    assert board.due_sla(T0 + timedelta(days=6)) == ["a"]
    warned = replace(state, version=2, sla_warned=True)
    board.put(warned)
    assert board.due_sla(T0 + timedelta(days=6, hours=1)) == []
    assert board.due_sla(T0 + timedelta(days=7)) == ["a"]
    board.put(replace(warned, version=3, sla_breached=True))
    assert board.due_sla(T0 + timedelta(days=30)) == []
    (stats,) = board.queue_stats()
    assert (stats.depth, stats.breached) == (1, 1)


def test_copies_of_one_item_and_offers_are_remembered_per_open_case() -> None:
    board = CaseBoard()
    for appeal_id in ("a", "b", "c"):
        board.put(case(appeal_id, content="hash-1"))
    board.put(case("d", content="hash-2"))
    assert board.copies("hash-1", appeal_pb2.PLATFORM_FACEBOOK, excluding="a") == ["b", "c"]
    offer = Offer("a", 1, "alice", "s1", T0, T0 + timedelta(seconds=30))
    board.offered(offer)
    board.offered(replace(offer, number=0))  # an older one is ignored
    assert board.latest_offer("a") == offer
    board.offered(Offer("zzz", 1, "alice", "s1", T0, T0))  # not an open case: not kept
    assert board.latest_offer("zzz") is None


def test_queue_depth_and_oldest_wait_per_queue() -> None:
    board = CaseBoard()
    board.put(case("a", at=T0))
    board.put(case("b", at=T0 + timedelta(minutes=3)))
    (stats,) = board.queue_stats()
    assert (stats.depth, stats.oldest_waiting_since) == (2, T0)
    board.put(claimed(case("a", at=T0), "alice"))
    (stats,) = board.queue_stats()
    assert (stats.depth, stats.oldest_waiting_since) == (1, T0 + timedelta(minutes=3))


def _values(value: object) -> list[object]:
    """Everything a case holds, its own fields and theirs, depth first."""
    if is_dataclass(value) and not isinstance(value, type):
        nested = [getattr(value, f.name) for f in fields(value)]
    elif isinstance(value, (tuple, list, set, frozenset)):
        nested = list(value)
    elif isinstance(value, dict):
        nested = [*value.keys(), *value.values()]
    else:
        return [value]
    return [value, *(inner for item in nested for inner in _values(item))]


def test_an_open_case_holds_its_facts_as_bytes_and_hands_out_copies() -> None:
    """Every open case stays on the board, so what it holds is paid per open case: a parsed
    message about 1.6 KB (outside Python's own allocator), its bytes about 150."""
    state = claimed(case("a1", content="c" * 64), "agent-1")
    assert not [v for v in _values(state) if isinstance(v, ProtoMessage)]
    facts = state.routing.submission
    assert (facts.platform, facts.subject.content_hash) == (appeal_pb2.PLATFORM_FACEBOOK, "c" * 64)
    assert (state.routing.platform, state.routing.content_hash) == (facts.platform, "c" * 64)
    facts.locale = "de-DE"  # a copy: the case does not change
    assert state.routing.submission.locale == "en-US"
    assert state.routing == case("a1", content="c" * 64).routing
