"""What routing tells the rest of the pipeline about each case record. Pure.

Event ids are derived from the appeal id and the step (the record's sequence number where a step
can happen more than once), so publishing a record's events again after a crash republishes the
same ids, which every consumer deduplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from appeals import topics
from appeals.events import derived_event_id, new_event
from appeals.v1 import appeal_pb2, commands_pb2, events_pb2
from services.routing.model import CaseRecord, CaseState, Kind, Target, Verdict

RESTORING_OUTCOMES = (appeal_pb2.OUTCOME_OVERTURNED,)


@dataclass(frozen=True)
class Outbound:
    topic: topics.Topic[Any]
    message: Message


def decided_event_id(appeal_id: str) -> str:
    return derived_event_id(appeal_id, "decided")


def messages_for(record: CaseRecord, state: CaseState, *, producer: str) -> list[Outbound]:
    """The events (and commands) that announce ``record``; ``state`` is the case after it."""
    builder = _BUILDERS.get(record.kind)
    return builder(record, state, producer) if builder else []


def _event(
    record: CaseRecord, step: str, producer: str, causation_id: str = "", **payload: Message
) -> Outbound:
    event = new_event(
        event_id=derived_event_id(record.appeal_id, step),
        appeal_id=record.appeal_id,
        producer=producer,
        causation_id=causation_id,
        occurred_at=record.at,
        **payload,
    )
    return Outbound(topics.APPEAL_LIFECYCLE, event)


def _routed(record: CaseRecord, state: CaseState, producer: str) -> list[Outbound]:
    submission = state.routing.submission
    routed = events_pb2.AppealRouted(
        queue=state.queue,
        priority=state.priority,
        platform=submission.platform,
        policy=submission.decision.policy,
        language=state.placement.attributes.get("language", ""),
    )
    routed.sla_due_at.FromDatetime(state.sla_due_at)
    return [_event(record, "routed", producer, state.routing.causation_id, routed=routed)]


def _claimed(record: CaseRecord, state: CaseState, producer: str) -> list[Outbound]:
    claimed = events_pb2.CaseClaimed(agent_id=record.agent_id, queue=state.queue)
    assert record.lease_expires_at is not None
    claimed.lease_expires_at.FromDatetime(record.lease_expires_at)
    return [_event(record, f"claimed#{record.seq}", producer, claimed=claimed)]


def info_requested_event_id(appeal_id: str, seq: int) -> str:
    """The id of the info_requested event of the request recorded at ``seq`` (an answer cites
    it)."""
    return derived_event_id(appeal_id, f"info_requested#{seq}")


def _info_requested(record: CaseRecord, state: CaseState, producer: str) -> list[Outbound]:
    requested = events_pb2.MoreInformationRequested(
        agent_id=record.agent_id, question=record.question
    )
    assert record.respond_by is not None
    requested.respond_by.FromDatetime(record.respond_by)
    event = _event(record, f"info_requested#{record.seq}", producer, info_requested=requested)
    return [event]


def _released(record: CaseRecord, state: CaseState, producer: str) -> list[Outbound]:
    # A first blind review goes out as a release: the outcome stays within routing until the
    # second review, so nobody downstream (or upstream) can tip off the second reviewer. A case
    # back from waiting for the appellant is released too (reason: answered, or not in time).
    reason = "second_review" if record.kind == Kind.REVIEWED else record.reason
    released = events_pb2.CaseReleased(agent_id=record.agent_id, queue=state.queue, reason=reason)
    return [_event(record, f"released#{record.seq}", producer, released=released)]


def _decided(record: CaseRecord, state: CaseState, producer: str) -> list[Outbound]:
    verdict = record.verdict
    assert verdict is not None
    submission = state.routing.submission
    decided = events_pb2.AppealDecided(
        agent_id=verdict.agent_id,
        outcome=verdict.outcome,  # type: ignore[arg-type]
        rationale=verdict.rationale,
        policy_cited=verdict.policy_cited,
        platform=submission.platform,
        facts=verdict.facts,
        concurring_agent_ids=list(record.concurring),
        applied_from_appeal_id=record.applied_from,
        by_assistant=verdict.by_assistant,
    )
    referral = state.referral
    if referral is not None and verdict.agent_id == referral.body:
        decided.referral_body = referral.body
    out = [_event(record, "decided", producer, decided=decided)]
    if verdict.outcome in RESTORING_OUTCOMES:
        out.append(_restore(record, state))
    return out


def _restore(record: CaseRecord, state: CaseState) -> Outbound:
    submission = state.routing.submission
    command = commands_pb2.RestoreCommand(
        command_id=derived_event_id(record.appeal_id, "restore"),
        appeal_id=record.appeal_id,
        causation_id=decided_event_id(record.appeal_id),
        platform=submission.platform,
        subject=submission.subject,
        original_decision_id=submission.decision.id,
    )
    command.issued_at.FromDatetime(record.at)
    return Outbound(topics.restore_commands_topic(submission.platform), command)


def _escalated(record: CaseRecord, state: CaseState, producer: str) -> list[Outbound]:
    escalated = events_pb2.AppealEscalated(
        agent_id=record.agent_id,
        target=record.target,
        reason=record.reason,
        from_queue=record.from_queue,
        to_queue=record.placement.queue if record.placement else "",
    )
    escalated.package.CopyFrom(package(state, question=record.question))
    return [_event(record, f"escalated#{record.seq}", producer, escalated=escalated)]


def referral_package(state: CaseState) -> events_pb2.CasePackage:
    """What a body a case was referred to reads: the package with its question and due date."""
    referral = state.referral
    assert referral is not None
    return package(state, question=referral.question)


def _transferred(record: CaseRecord, state: CaseState, producer: str) -> list[Outbound]:
    transferred = events_pb2.CaseTransferred(
        agent_id=record.agent_id,
        from_queue=record.from_queue,
        to_queue=state.queue,
        reason=record.reason,
    )
    return [_event(record, f"transferred#{record.seq}", producer, transferred=transferred)]


def _sla_warned(record: CaseRecord, state: CaseState, producer: str) -> list[Outbound]:
    warning = events_pb2.SlaWarning(queue=state.queue)
    warning.due_at.FromDatetime(state.sla_due_at)
    return [_event(record, "sla_warning", producer, sla_warning=warning)]


def _sla_breached(record: CaseRecord, state: CaseState, producer: str) -> list[Outbound]:
    breached = events_pb2.SlaBreached(queue=record.from_queue or state.queue)
    breached.due_at.FromDatetime(state.sla_due_at)
    out = [_event(record, "sla_breached", producer, sla_breached=breached)]
    if record.placement is not None:
        escalated = events_pb2.AppealEscalated(
            target=Target.SLA_BREACH,
            reason="undecided at its SLA due time",
            from_queue=record.from_queue,
            to_queue=record.placement.queue,
        )
        escalated.package.CopyFrom(package(state))
        out.append(_event(record, f"escalated#{record.seq}", producer, escalated=escalated))
    return out


def package(state: CaseState, *, question: str = "") -> events_pb2.CasePackage:
    """Everything the next reviewer (senior, legal, a body it is referred to) needs about the case,
    except the appellant's personal data: the package travels on the lifecycle topic, so it
    names the appeal (the envelope's id) and whoever takes it up reads the statement from intake
    (a senior or legal reviewer through the desk when they claim it)."""
    routing = state.routing
    packaged = events_pb2.CasePackage(
        facts=routing.submission,
        routing_rule=routing.rule,
        priority=state.priority,
        priority_reasons=list(routing.reasons),
        reviews=[prior_review(v) for v in state.reviews],
        question=question,
    )
    packaged.received_at.FromDatetime(routing.received_at)
    packaged.sla_due_at.FromDatetime(state.sla_due_at)
    if state.referral is not None:
        packaged.referred_to = state.referral.body
        packaged.respond_by.FromDatetime(state.referral.respond_by)
    return packaged


def prior_review(verdict: Verdict) -> events_pb2.PriorReview:
    review = events_pb2.PriorReview(
        agent_id=verdict.agent_id,
        outcome=verdict.outcome,  # type: ignore[arg-type]
        rationale=verdict.rationale,
        policy_cited=verdict.policy_cited,
        facts=verdict.facts,
    )
    review.reviewed_at.FromDatetime(verdict.at)
    return review


_BUILDERS = {
    Kind.ROUTED: _routed,
    Kind.CLAIMED: _claimed,
    Kind.RELEASED: _released,
    Kind.REVIEWED: _released,
    Kind.DECIDED: _decided,
    Kind.ESCALATED: _escalated,
    Kind.TRANSFERRED: _transferred,
    Kind.SLA_WARNED: _sla_warned,
    Kind.SLA_BREACHED: _sla_breached,
    Kind.INFO_REQUESTED: _info_requested,
    Kind.INFO_RECEIVED: _released,
    Kind.INFO_LAPSED: _released,
}
