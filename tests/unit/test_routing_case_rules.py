"""How cases move: claims, leases, independence, blind reviews and SLA timers (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appeals.v1 import appeal_pb2
from appeals_runtime.auth import PermissionDenied
from appeals_runtime.errors import Conflict, NotFound
from services.routing import case_rules, policy
from services.routing.model import (
    CaseRecord,
    CaseState,
    Kind,
    Referral,
    Round,
    Routing,
    Status,
    Target,
    Verdict,
)
from services.routing.policy_file import DEFAULT_POLICY_FILE, load_policy

RULES = load_policy(DEFAULT_POLICY_FILE)
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)
UPHELD, OVERTURNED = appeal_pb2.OUTCOME_UPHELD, appeal_pb2.OUTCOME_OVERTURNED


def routed(*, second_review: bool = False, decided_by: str = "classifier-7") -> CaseState:
    submission = appeal_pb2.SubmissionFacts(
        platform=appeal_pb2.PLATFORM_FACEBOOK,
        decision=appeal_pb2.OriginalDecision(
            policy="spam", action="removed", decided_by=decided_by
        ),
        locale="en-US",
    )
    decision = policy.route(RULES, policy.AppealFacts(submission, T0))
    record = CaseRecord(
        "ap_1",
        1,
        Kind.ROUTED,
        T0,
        placement=decision.placement,
        priority=decision.priority,
        routing=Routing(
            submission=submission,
            received_at=T0,
            rule=decision.rule,
            reasons=decision.reasons,
            sla_due_at=decision.sla.due_at,
            sla_warn_at=decision.sla.warn_at,
            second_review=second_review,
        ),
    )
    state = case_rules.fold([record])
    assert state is not None
    return state


def step(state: CaseState, record: CaseRecord | None) -> CaseState:
    assert record is not None and record.seq == state.version + 1
    return case_rules.apply(state, record)


def verdict(agent: str, outcome: int, at: datetime = T0) -> Verdict:
    return Verdict(agent, outcome, "Reasons.", "spam", "Facts.", at)


def senior_placement(state: CaseState) -> policy.Placement:
    return policy.place(RULES, "senior", state.placement.attributes)


def claimed(state: CaseState, agent: str, at: datetime = T0) -> CaseState:
    return step(state, case_rules.claim(state, agent, at, LEASE))


def test_a_claim_is_exclusive_until_released() -> None:
    case = claimed(routed(), "alice")
    assert case.status == Status.IN_REVIEW and case.held_by("alice", T0)
    assert case_rules.claim(case, "alice", T0, LEASE) is None  # claiming twice is a no-op
    with pytest.raises(Conflict, match="claimed by another reviewer"):
        case_rules.claim(case, "bob", T0, LEASE)
    released = step(case, case_rules.release(case, "alice", "need a break", T0))
    assert released.status == Status.QUEUED
    assert claimed(released, "bob").held_by("bob", T0)


def test_an_offer_reserves_the_case_for_its_agent() -> None:
    with pytest.raises(Conflict, match="offered to another reviewer"):
        case_rules.claim(routed(), "bob", T0, LEASE, offered_to="alice")
    assert case_rules.claim(routed(), "alice", T0, LEASE, offered_to="alice") is not None


def test_the_original_decider_can_never_claim_the_appeal() -> None:
    case = routed(decided_by="moderator-9")
    with pytest.raises(PermissionDenied, match="made the original decision"):
        case_rules.claim(case, "moderator-9", T0, LEASE)
    assert not case_rules.may_review(case, "moderator-9")


def test_a_lease_expires_on_the_clock_and_heartbeats_extend_it() -> None:
    case = claimed(routed(), "alice")
    assert case_rules.expire_lease(case, T0 + LEASE - timedelta(seconds=1)) is None
    later = T0 + timedelta(minutes=10)
    case = step(case, case_rules.heartbeat(case, "alice", later, LEASE))
    assert case.hold is not None and case.hold.lease_expires_at == later + LEASE
    assert case_rules.expire_lease(case, T0 + LEASE + timedelta(minutes=1)) is None
    expired_at = later + LEASE
    record = case_rules.expire_lease(case, expired_at)
    assert record is not None and (record.kind, record.reason) == (Kind.RELEASED, "lease_expired")
    with pytest.raises(Conflict, match="lease ran out"):
        case_rules.heartbeat(case, "alice", expired_at, LEASE)
    with pytest.raises(Conflict):
        case_rules.decide(
            case, verdict("alice", UPHELD, expired_at), disagreement=senior_placement(case)
        )
    assert claimed(step(case, record), "bob", expired_at).held_by("bob", expired_at)


def test_a_decision_needs_the_claim_and_is_final() -> None:
    case = routed()
    with pytest.raises(Conflict, match="claim appeal"):
        case_rules.decide(case, verdict("alice", UPHELD), disagreement=senior_placement(case))
    case = claimed(case, "alice")
    record = case_rules.decide(case, verdict("alice", UPHELD), disagreement=senior_placement(case))
    decided = step(case, record)
    assert decided.status == Status.DECIDED and decided.decision is not None
    assert decided.decision.agent_id == "alice"  # a human reviewer is always on record
    again = case_rules.decide(
        decided, verdict("alice", UPHELD), disagreement=senior_placement(case)
    )
    assert again is None  # a retry
    with pytest.raises(Conflict, match="already decided"):
        case_rules.decide(
            decided, verdict("alice", OVERTURNED), disagreement=senior_placement(case)
        )
    with pytest.raises(Conflict, match="already decided"):
        case_rules.claim(decided, "bob", T0, LEASE)


def test_a_second_blind_review_that_agrees_decides_with_both_reviewers() -> None:
    case = claimed(routed(second_review=True), "alice")
    case = step(
        case,
        case_rules.decide(case, verdict("alice", OVERTURNED), disagreement=senior_placement(case)),
    )
    assert (case.status, case.round) == (Status.QUEUED, Round.SECOND_BLIND)
    with pytest.raises(PermissionDenied, match="already reviewed"):
        case_rules.claim(case, "alice", T0, LEASE)
    case = claimed(case, "bob")
    record = case_rules.decide(
        case, verdict("bob", OVERTURNED), disagreement=senior_placement(case)
    )
    assert record is not None and record.kind == Kind.DECIDED
    decided = step(case, record)
    assert decided.status == Status.DECIDED and decided.concurring == ("alice",)


def test_a_disagreement_goes_to_a_senior_who_sees_both_reviews() -> None:
    case = claimed(routed(second_review=True), "alice")
    case = step(
        case, case_rules.decide(case, verdict("alice", UPHELD), disagreement=senior_placement(case))
    )
    case = claimed(case, "bob")
    record = case_rules.decide(
        case, verdict("bob", OVERTURNED), disagreement=senior_placement(case)
    )
    assert record is not None and (record.kind, record.target) == (
        Kind.ESCALATED,
        Target.REVIEW_DISAGREEMENT,
    )
    case = step(case, record)
    assert (case.status, case.round, case.queue) == (
        Status.QUEUED,
        Round.SENIOR_ADJUDICATION,
        "senior.en",
    )
    assert [r.agent_id for r in case.reviews] == ["alice", "bob"]
    for reviewer in ("alice", "bob"):
        assert not case_rules.may_review(case, reviewer)
    case = claimed(case, "carol")
    final = step(
        case, case_rules.decide(case, verdict("carol", UPHELD), disagreement=senior_placement(case))
    )
    assert final.status == Status.DECIDED and final.decision is not None
    assert final.decision.agent_id == "carol"


def test_sla_warning_then_breach_each_once_and_the_breach_moves_the_case_up() -> None:
    case = routed()
    warn_at, due_at = case.routing.sla_warn_at, case.routing.sla_due_at
    senior = senior_placement(case)

    def sla(state: CaseState, now: datetime) -> CaseRecord | None:
        return case_rules.sla_step(state, now, breach_placement=senior, breach_priority=99)

    assert sla(case, warn_at - timedelta(seconds=1)) is None
    case = step(case, sla(case, warn_at))
    assert case.sla_warned and sla(case, warn_at + timedelta(minutes=1)) is None
    case = claimed(case, "alice", due_at - timedelta(minutes=1))
    record = sla(case, due_at)
    assert record is not None and record.kind == Kind.SLA_BREACHED
    case = step(case, record)
    assert (case.sla_breached, case.queue, case.priority) == (True, "senior.en", 99)
    assert case.held_by("alice", due_at)  # the reviewer on it keeps it
    assert sla(case, due_at + timedelta(days=1)) is None


def test_a_decision_applies_to_an_identical_copy_only_when_nothing_speaks_against_it() -> None:
    applied = verdict("alice", OVERTURNED)
    assert case_rules.apply_copy(routed(), "ap_source", applied) is not None
    assert case_rules.apply_copy(claimed(routed(), "bob"), "ap_source", applied) is None
    assert case_rules.apply_copy(routed(second_review=True), "ap_source", applied) is None
    assert case_rules.apply_copy(routed(decided_by="alice"), "ap_source", applied) is None


def test_escalation_and_transfer_need_the_claim_and_hand_the_case_over() -> None:
    case = routed()
    with pytest.raises(Conflict):
        case_rules.escalate(
            case, "alice", T0, target=Target.SENIOR, placement=senior_placement(case), reason="r"
        )
    case = claimed(case, "alice")
    board = step(
        case,
        case_rules.escalate(
            case, "alice", T0, target=Target.OVERSIGHT_BOARD, placement=None, reason="precedent",
            question="Is satire exempt?", referred_to="oversight_board",
            respond_by=T0 + timedelta(days=90),
        ),
    )  # fmt: skip
    assert board.status == Status.REFERRED and board.final
    assert board.referral == Referral(
        "oversight_board", "Is satire exempt?", T0, T0 + timedelta(days=90)
    )
    target = policy.resolve_queue(RULES, "facebook.integrity.de", case.placement.attributes)
    assert target is not None
    moved = step(case, case_rules.transfer(case, "alice", T0, placement=target, reason="German"))
    assert (moved.queue, moved.status, moved.hold) == ("facebook.integrity.de", Status.QUEUED, None)
    assert moved.waiting_since == T0


def referred(body: str = "ods:user_rights") -> CaseState:
    case = claimed(routed(), "alice")
    target = Target.OVERSIGHT_BOARD if body == "oversight_board" else Target.OUT_OF_COURT
    return step(
        case,
        case_rules.escalate(
            case, "alice", T0, target=target, placement=None, reason="needs an outside view",
            question="Does the exception apply?", referred_to=body,
            respond_by=T0 + timedelta(days=90),
        ),
    )  # fmt: skip


def test_a_referral_leaves_the_desk_until_its_body_decides() -> None:
    case = referred()
    assert case.status == Status.REFERRED
    assert case.referral is not None and case.referral.body == "ods:user_rights"
    assert not case.referral.overdue(T0 + timedelta(days=89))
    assert case.referral.overdue(T0 + timedelta(days=90))
    with pytest.raises(Conflict, match="referred to ods:user_rights"):
        case_rules.claim(case, "bob", T0, LEASE)

    later = T0 + timedelta(days=30)
    decided = step(
        case,
        case_rules.decide_referral(
            case, "ods:user_rights", verdict("ods:user_rights", OVERTURNED, later)
        ),
    )
    assert decided.status == Status.DECIDED and decided.final
    assert decided.decision is not None and decided.decision.agent_id == "ods:user_rights"
    assert decided.referral == case.referral  # kept: the trail says where the decision came from


def test_only_the_body_referred_to_decides_and_others_learn_nothing() -> None:
    case = referred("oversight_board")
    board_verdict = verdict("ods:user_rights", UPHELD)
    with pytest.raises(NotFound, match="no referral"):
        case_rules.decide_referral(case, "ods:user_rights", board_verdict)
    with pytest.raises(NotFound, match="no referral"):  # a case never referred: the same answer
        case_rules.decide_referral(claimed(routed(), "alice"), "oversight_board", board_verdict)


def test_a_body_repeating_its_decision_is_a_no_op_and_a_different_one_is_refused() -> None:
    case = referred()
    first = verdict("ods:user_rights", UPHELD)
    decided = step(case, case_rules.decide_referral(case, "ods:user_rights", first))
    assert case_rules.decide_referral(decided, "ods:user_rights", first) is None
    with pytest.raises(Conflict, match="already decided"):
        case_rules.decide_referral(
            decided, "ods:user_rights", verdict("ods:user_rights", OVERTURNED)
        )


def test_a_referral_needs_its_body_and_due_date_and_nothing_else_has_them() -> None:
    case = claimed(routed(), "alice")
    with pytest.raises(ValueError, match="names its body"):
        case_rules.escalate(
            case, "alice", T0, target=Target.OUT_OF_COURT, placement=None, reason="r"
        )
    with pytest.raises(ValueError, match="names its body"):
        case_rules.escalate(
            case, "alice", T0, target=Target.SENIOR, placement=senior_placement(case),
            reason="r", referred_to="oversight_board", respond_by=T0,
        )  # fmt: skip


def test_a_board_referral_recorded_before_referrals_came_back_is_the_boards() -> None:
    case = claimed(routed(), "alice")
    old = CaseRecord(
        "ap_1", case.version + 1, Kind.ESCALATED, T0, agent_id="alice",
        target=Target.OVERSIGHT_BOARD, question="Satire?", from_queue=case.queue,
    )  # fmt: skip
    referral = step(case, old).referral
    assert referral == Referral("oversight_board", "Satire?", T0, T0 + timedelta(days=90))


def asked(case: CaseState, at: datetime = T0) -> CaseState:
    held = claimed(case, "alice", at)
    return step(
        held,
        case_rules.request_info(
            held, "alice", at, question="A screenshot?", respond_by=at + timedelta(days=14)
        ),
    )


def test_a_request_for_information_takes_the_case_off_the_desk_and_stops_its_sla() -> None:
    case = routed()
    with pytest.raises(Conflict, match="claim"):
        case_rules.request_info(case, "alice", T0, question="q", respond_by=T0)
    waiting = asked(case)
    assert waiting.status == Status.AWAITING_INFO and not waiting.is_open(T0)
    assert waiting.info_request is not None and waiting.info_request.question == "A screenshot?"
    with pytest.raises(Conflict, match="waits for the appellant"):
        case_rules.claim(waiting, "bob", T0, LEASE)
    # Long past the SLA due time, the clock stands still: no warning, no breach.
    later = case.routing.sla_due_at + timedelta(days=1)
    assert case_rules.sla_step(waiting, later, breach_placement=None, breach_priority=0) is None


def test_an_answer_queues_the_case_again_and_the_wait_does_not_count_on_the_sla() -> None:
    case = routed()
    waiting = asked(case)
    assert waiting.info_request is not None
    three_days = T0 + timedelta(days=3)
    assert case_rules.info_received(waiting, waiting.info_request.seq + 1, three_days) is None
    back = step(waiting, case_rules.info_received(waiting, waiting.info_request.seq, three_days))
    assert back.status == Status.QUEUED and back.info_request is None
    assert back.waiting_since == three_days
    assert back.sla_due_at == case.routing.sla_due_at + timedelta(days=3)
    assert back.sla_warn_at == case.routing.sla_warn_at + timedelta(days=3)
    assert case_rules.info_received(back, waiting.info_request.seq, three_days) is None  # again


def test_without_an_answer_in_time_the_case_returns_to_its_queue() -> None:
    waiting = asked(routed())
    assert waiting.info_request is not None
    due = waiting.info_request.respond_by
    early = due - timedelta(seconds=1)
    assert case_rules.sla_step(waiting, early, breach_placement=None, breach_priority=0) is None
    lapsed = case_rules.sla_step(waiting, due, breach_placement=None, breach_priority=0)
    assert lapsed is not None and lapsed.kind == Kind.INFO_LAPSED
    back = step(waiting, lapsed)
    assert back.status == Status.QUEUED and back.sla_paused == timedelta(days=14)
