"""How a case moves: the fold of its records, and the checks every step must pass. Pure.

Each step function takes the case as it is now and returns the record that moves it on (with the
next sequence number), ``None`` when there is nothing to do (a retry, a timer with nothing due),
or raises the error the caller gets. Appending that record with a unique ``_id`` of appeal id and
sequence number makes the step exclusive: of two racing steps exactly one lands, and the other is
re-checked against the new state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from appeals_runtime.auth import PermissionDenied
from appeals_runtime.errors import Conflict, NotFound
from services.routing.model import (
    REFERRAL_TARGETS,
    CaseRecord,
    CaseState,
    Hold,
    InfoRequest,
    Kind,
    Referral,
    Round,
    Status,
    Target,
    Verdict,
    legacy_board_referral,
)
from services.routing.policy import Placement

LEASE_EXPIRED = "lease_expired"
SECOND_REVIEW = "second_review"


def fold(records: Iterable[CaseRecord]) -> CaseState | None:
    state: CaseState | None = None
    for record in records:
        state = apply(state, record)
    return state


def apply(state: CaseState | None, record: CaseRecord) -> CaseState:
    if state is None:
        return _opened(record)
    if record.kind == Kind.ROUTED:
        raise ValueError(f"case {record.appeal_id} is routed twice")
    return _APPLY[record.kind](replace(state, version=record.seq), record)


def _opened(record: CaseRecord) -> CaseState:
    if record.kind != Kind.ROUTED or record.routing is None or record.placement is None:
        raise ValueError(f"case {record.appeal_id} must start with a routed record")
    routing = record.routing
    return CaseState(
        appeal_id=record.appeal_id,
        version=record.seq,
        routing=routing,
        placement=record.placement,
        waiting_since=record.at,
        priority=record.priority or 0,
        status=Status.QUEUED,
        excluded=frozenset({routing.original_decider} - {""}),
    )


def _claimed(state: CaseState, record: CaseRecord) -> CaseState:
    assert record.lease_expires_at is not None
    # A heartbeat extends the claim it belongs to; the claim keeps its own sequence number.
    seq = state.hold.seq if record.kind == Kind.HEARTBEAT and state.hold else record.seq
    return replace(
        state, status=Status.IN_REVIEW, hold=Hold(record.agent_id, seq, record.lease_expires_at)
    )


def _released(state: CaseState, record: CaseRecord) -> CaseState:
    return replace(state, status=Status.QUEUED, hold=None)


def _reviewed(state: CaseState, record: CaseRecord) -> CaseState:
    assert record.verdict is not None
    return replace(
        state,
        status=Status.QUEUED,
        hold=None,
        round=Round.SECOND_BLIND,
        reviews=(*state.reviews, record.verdict),
        excluded=state.excluded | {record.agent_id},
    )


def _decided(state: CaseState, record: CaseRecord) -> CaseState:
    return replace(
        state,
        status=Status.DECIDED,
        hold=None,
        decision=record.verdict,
        concurring=record.concurring,
        applied_from=record.applied_from,
    )


def _transferred(state: CaseState, record: CaseRecord) -> CaseState:
    assert record.placement is not None
    return replace(
        state, placement=record.placement, waiting_since=record.at, status=Status.QUEUED, hold=None
    )


def _warned(state: CaseState, record: CaseRecord) -> CaseState:
    return replace(state, sla_warned=True)


def _breached(state: CaseState, record: CaseRecord) -> CaseState:
    breached = replace(state, sla_warned=True, sla_breached=True)
    if record.placement is None:
        return breached
    # The case moves up, but a reviewer already on it keeps it: the hold stays.
    return replace(
        breached,
        placement=record.placement,
        waiting_since=record.at,
        priority=record.priority if record.priority is not None else state.priority,
    )


def _escalated(state: CaseState, record: CaseRecord) -> CaseState:
    if record.target in REFERRAL_TARGETS:
        if record.referred_to and record.respond_by is not None:
            referral = Referral(record.referred_to, record.question, record.at, record.respond_by)
        else:
            referral = legacy_board_referral(record.at, record.question)
        return replace(state, status=Status.REFERRED, hold=None, referral=referral)
    assert record.placement is not None
    escalated = replace(
        state,
        placement=record.placement,
        waiting_since=record.at,
        priority=record.priority if record.priority is not None else state.priority,
        status=Status.QUEUED,
        hold=None,
    )
    if record.target == Target.REVIEW_DISAGREEMENT and record.verdict is not None:
        return replace(
            escalated,
            round=Round.SENIOR_ADJUDICATION,
            reviews=(*state.reviews, record.verdict),
            excluded=state.excluded | {record.agent_id},
        )
    return escalated


def _info_requested(state: CaseState, record: CaseRecord) -> CaseState:
    assert record.respond_by is not None
    request = InfoRequest(
        record.agent_id, record.question, record.at, record.respond_by, record.seq
    )
    return replace(state, status=Status.AWAITING_INFO, hold=None, info_request=request)


def _info_settled(state: CaseState, record: CaseRecord) -> CaseState:
    """Answered, or its window ended: back to the queue; the wait does not count on the SLA."""
    asked = state.info_request
    paused = max(record.at - asked.asked_at, timedelta(0)) if asked else timedelta(0)
    return replace(
        state,
        status=Status.QUEUED,
        waiting_since=record.at,
        info_request=None,
        sla_paused=state.sla_paused + paused,
    )


def _next(state: CaseState, kind: Kind, at: datetime, **fields: object) -> CaseRecord:
    return CaseRecord(state.appeal_id, state.version + 1, kind, at, **fields)  # type: ignore[arg-type]


# --- checks ---------------------------------------------------------------------------------


def ensure_independent(state: CaseState, agent_id: str) -> None:
    """DSA Art. 20(6): the person who made the decision never reviews the appeal against it."""
    if agent_id == state.routing.original_decider:
        raise PermissionDenied(
            f"{agent_id} made the original decision of appeal {state.appeal_id}; "
            "an independent reviewer must review it"
        )
    if agent_id in state.excluded:
        raise PermissionDenied(
            f"{agent_id} already reviewed appeal {state.appeal_id}; the next review must be "
            "independent"
        )


def may_review(state: CaseState, agent_id: str) -> bool:
    return agent_id != state.routing.original_decider and agent_id not in state.excluded


def _ensure_open_for_work(state: CaseState) -> None:
    if state.status == Status.DECIDED:
        raise Conflict(f"appeal {state.appeal_id} is already decided")
    if state.status == Status.REFERRED:
        body = state.referral.body if state.referral else "an external body"
        raise Conflict(f"appeal {state.appeal_id} was referred to {body}; its decision decides")
    if state.status == Status.AWAITING_INFO:
        raise Conflict(f"appeal {state.appeal_id} waits for the appellant's answer")


def _ensure_held(state: CaseState, agent_id: str, now: datetime, doing: str) -> None:
    _ensure_open_for_work(state)
    if not state.held_by(agent_id, now):
        raise Conflict(f"claim appeal {state.appeal_id} before {doing} it (or your lease ran out)")


# --- steps ----------------------------------------------------------------------------------


def claim(
    state: CaseState,
    agent_id: str,
    now: datetime,
    lease: timedelta,
    *,
    offered_to: str | None = None,
) -> CaseRecord | None:
    """None when the agent already holds the case: claiming twice is not an error."""
    _ensure_open_for_work(state)
    ensure_independent(state, agent_id)
    if state.held_by(agent_id, now):
        return None
    if not state.is_open(now):
        raise Conflict(f"appeal {state.appeal_id} is claimed by another reviewer")
    if offered_to is not None and offered_to != agent_id:
        raise Conflict(f"appeal {state.appeal_id} is offered to another reviewer right now")
    return _next(state, Kind.CLAIMED, now, agent_id=agent_id, lease_expires_at=now + lease)


def heartbeat(state: CaseState, agent_id: str, now: datetime, lease: timedelta) -> CaseRecord:
    _ensure_held(state, agent_id, now, "extending the lease of")
    return _next(state, Kind.HEARTBEAT, now, agent_id=agent_id, lease_expires_at=now + lease)


def release(state: CaseState, agent_id: str, reason: str, now: datetime) -> CaseRecord:
    _ensure_held(state, agent_id, now, "releasing")
    return _next(state, Kind.RELEASED, now, agent_id=agent_id, reason=reason or "released")


def expire_lease(state: CaseState, now: datetime) -> CaseRecord | None:
    """The case goes back to its queue once its lease ran out without a decision."""
    if not state.lease_expired(now) or state.hold is None:
        return None
    return _next(state, Kind.RELEASED, now, agent_id=state.hold.agent_id, reason=LEASE_EXPIRED)


def decide(state: CaseState, verdict: Verdict, *, disagreement: Placement) -> CaseRecord | None:
    """Final decision, first of two blind reviews, or a disagreement sent to ``disagreement``.

    None when the same reviewer repeats the same answer (a retry): nothing more to record.
    """
    agent_id, now = verdict.agent_id, verdict.at
    if state.decision is not None and state.status == Status.DECIDED:
        if (state.decision.agent_id, state.decision.outcome) == (agent_id, verdict.outcome):
            return None
        raise Conflict(f"appeal {state.appeal_id} is already decided")
    if any((r.agent_id, r.outcome) == (agent_id, verdict.outcome) for r in state.reviews):
        return None
    _ensure_held(state, agent_id, now, "deciding")
    ensure_independent(state, agent_id)
    if state.round == Round.FIRST and state.routing.second_review:
        return _next(state, Kind.REVIEWED, now, agent_id=agent_id, verdict=verdict)
    if state.round == Round.SECOND_BLIND:
        first = state.reviews[-1]
        if first.outcome != verdict.outcome:
            return _next(
                state,
                Kind.ESCALATED,
                now,
                agent_id=agent_id,
                verdict=verdict,
                target=Target.REVIEW_DISAGREEMENT,
                placement=disagreement,
                from_queue=state.queue,
                priority=state.priority,
                reason="the second, blind review disagreed with the first",
            )
        return _next(
            state, Kind.DECIDED, now, agent_id=agent_id, verdict=verdict,
            concurring=(first.agent_id,),
        )  # fmt: skip
    return _next(state, Kind.DECIDED, now, agent_id=agent_id, verdict=verdict)


def apply_copy(state: CaseState, source_appeal_id: str, verdict: Verdict) -> CaseRecord | None:
    """The same decision for an appeal about identical content, when nothing speaks against it:
    not while someone reviews it, not by its own original decider, not where a second review is
    required."""
    if state.final or state.claimed(verdict.at) or state.routing.second_review:
        return None
    if not may_review(state, verdict.agent_id) or state.round != Round.FIRST:
        return None
    return _next(
        state, Kind.DECIDED, verdict.at, agent_id=verdict.agent_id, verdict=verdict,
        applied_from=source_appeal_id,
    )  # fmt: skip


def escalate(
    state: CaseState,
    agent_id: str,
    now: datetime,
    *,
    target: Target,
    placement: Placement | None,
    reason: str,
    question: str = "",
    referred_to: str = "",
    respond_by: datetime | None = None,
) -> CaseRecord:
    """Up to another queue (``placement``), or out to an external body (``referred_to``, whose
    decision is due by ``respond_by``)."""
    _ensure_held(state, agent_id, now, "escalating")
    if placement is not None and placement.queue == state.queue:
        raise Conflict(f"appeal {state.appeal_id} already waits in {state.queue}")
    if (target in REFERRAL_TARGETS) != bool(referred_to and respond_by):
        raise ValueError("a referral names its body and due date; nothing else does")
    return _next(
        state, Kind.ESCALATED, now, agent_id=agent_id, target=target, placement=placement,
        from_queue=state.queue, priority=state.priority, reason=reason, question=question,
        referred_to=referred_to, respond_by=respond_by,
    )  # fmt: skip


def decide_referral(state: CaseState, body: str, verdict: Verdict) -> CaseRecord | None:
    """An external body's binding decision on a case referred to it.

    None when the body repeats the decision it made (a retry). A case not referred to ``body``
    is not found, whether it exists or not: one body never learns about another's referrals.
    """
    referral = state.referral
    if referral is None or referral.body != body:
        raise NotFound(f"no referral of appeal {state.appeal_id} to {body}")
    if state.status == Status.DECIDED:
        decision = state.decision
        if decision is not None and (decision.agent_id, decision.outcome) == (
            body,
            verdict.outcome,
        ):
            return None
        raise Conflict(f"{body} already decided appeal {state.appeal_id}")
    if state.status != Status.REFERRED:
        raise NotFound(f"no referral of appeal {state.appeal_id} to {body}")
    return _next(state, Kind.DECIDED, verdict.at, agent_id=body, verdict=verdict)


def transfer(
    state: CaseState, agent_id: str, now: datetime, *, placement: Placement, reason: str
) -> CaseRecord:
    _ensure_held(state, agent_id, now, "transferring")
    if placement.queue == state.queue:
        raise Conflict(f"appeal {state.appeal_id} already waits in {state.queue}")
    return _next(
        state, Kind.TRANSFERRED, now, agent_id=agent_id, placement=placement,
        from_queue=state.queue, reason=reason,
    )  # fmt: skip


def request_info(
    state: CaseState, agent_id: str, now: datetime, *, question: str, respond_by: datetime
) -> CaseRecord:
    """The reviewer holding the case asks the appellant for more; the case waits off the desk."""
    _ensure_held(state, agent_id, now, "asking about")
    return _next(
        state, Kind.INFO_REQUESTED, now, agent_id=agent_id, question=question,
        respond_by=respond_by, from_queue=state.queue,
    )  # fmt: skip


def info_received(state: CaseState, request_seq: int, now: datetime) -> CaseRecord | None:
    """The appellant answered the request recorded at ``request_seq``; None for an answer to a
    request no longer open (a redelivery, or one that lapsed first: the reviewer reads it
    anyway, from intake)."""
    request = state.info_request
    if state.status != Status.AWAITING_INFO or request is None or request.seq != request_seq:
        return None
    return _next(state, Kind.INFO_RECEIVED, now, reason="information_provided")


def sla_step(
    state: CaseState,
    now: datetime,
    *,
    breach_placement: Placement | None,
    breach_priority: int,
) -> CaseRecord | None:
    """A warning before the due time, a breach at it (moving the case up if the policy says);
    while the case waits for the appellant, nothing but the end of that wait."""
    if state.final:
        return None
    if state.status == Status.AWAITING_INFO:
        request = state.info_request
        if request is not None and now >= request.respond_by:
            return _next(state, Kind.INFO_LAPSED, now, reason="information_not_provided")
        return None
    if not state.sla_breached and now >= state.sla_due_at:
        moves = breach_placement is not None and breach_placement.queue != state.queue
        return _next(
            state, Kind.SLA_BREACHED, now, placement=breach_placement if moves else None,
            priority=breach_priority if moves else None, from_queue=state.queue,
        )  # fmt: skip
    if not state.sla_warned and not state.sla_breached and now >= state.sla_warn_at:
        return _next(state, Kind.SLA_WARNED, now, from_queue=state.queue)
    return None


_APPLY = {
    Kind.CLAIMED: _claimed,
    Kind.HEARTBEAT: _claimed,
    Kind.RELEASED: _released,
    Kind.REVIEWED: _reviewed,
    Kind.DECIDED: _decided,
    Kind.ESCALATED: _escalated,
    Kind.TRANSFERRED: _transferred,
    Kind.SLA_WARNED: _warned,
    Kind.SLA_BREACHED: _breached,
    Kind.INFO_REQUESTED: _info_requested,
    Kind.INFO_RECEIVED: _info_settled,
    Kind.INFO_LAPSED: _info_settled,
}
