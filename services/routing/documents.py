"""How routing's objects are stored: documents to and from records, views, offers, agents.

Pure mapping, no store access (that is the repository's alone).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from bson import Binary

from appeals.v1 import appeal_pb2
from appeals_runtime import store
from services.routing.model import (
    AgentProfile,
    CaseRecord,
    CaseState,
    Hold,
    InfoRequest,
    Kind,
    Offer,
    Presence,
    Referral,
    Round,
    Routing,
    Status,
    Verdict,
    legacy_board_referral,
)
from services.routing.policy import AgentSkills, Placement, Requirements, shared


def decision_key(submission: appeal_pb2.SubmissionFacts) -> str:
    """Identifies the original decision across appeals (repeat appeals)."""
    if not submission.decision.id:
        return ""
    return f"{submission.platform}:{submission.decision.id}"


def record_key(appeal_id: str, seq: int) -> str:
    return f"{appeal_id}#{seq:010d}"


def record_id(record: CaseRecord) -> str:
    return record_key(record.appeal_id, record.seq)


def offer_key(appeal_id: str, number: int) -> str:
    return f"{appeal_id}#o{number}"


def record_document(record: CaseRecord) -> store.Document:
    document: store.Document = {
        "_id": record_id(record),
        "appeal_id": record.appeal_id,
        "seq": record.seq,
        "kind": record.kind.value,
        "at": record.at,
    }
    optional: dict[str, Any] = {
        "agent_id": record.agent_id,
        "reason": record.reason,
        "lease_expires_at": record.lease_expires_at,
        "verdict": _verdict_document(record.verdict) if record.verdict else None,
        "placement": _placement_document(record.placement) if record.placement else None,
        "priority": record.priority,
        "routing": _routing_document(record.routing) if record.routing else None,
        "from_queue": record.from_queue,
        "target": record.target,
        "question": record.question,
        "concurring": list(record.concurring),
        "applied_from": record.applied_from,
        "referred_to": record.referred_to,
        "respond_by": record.respond_by,
    }
    document.update({key: value for key, value in optional.items() if value not in (None, "", [])})
    return document


def record(document: store.Document) -> CaseRecord:
    return CaseRecord(
        appeal_id=document["appeal_id"],
        seq=document["seq"],
        kind=Kind(document["kind"]),
        at=document["at"],
        agent_id=document.get("agent_id", ""),
        reason=document.get("reason", ""),
        lease_expires_at=document.get("lease_expires_at"),
        verdict=_verdict(document["verdict"]) if "verdict" in document else None,
        placement=_placement(document["placement"]) if "placement" in document else None,
        priority=document.get("priority"),
        routing=_routing(document["routing"]) if "routing" in document else None,
        from_queue=document.get("from_queue", ""),
        target=document.get("target", ""),
        question=document.get("question", ""),
        concurring=tuple(document.get("concurring", ())),
        applied_from=document.get("applied_from", ""),
        referred_to=document.get("referred_to", ""),
        respond_by=document.get("respond_by"),
    )


def view_document(state: CaseState) -> store.Document:
    submission = state.routing.submission
    hold = state.hold
    if state.sla_breached:
        next_timer = None
    else:
        next_timer = state.sla_due_at if state.sla_warned else state.sla_warn_at
    return {
        "_id": state.appeal_id,
        "version": state.version,
        # Query fields.
        "status": state.status.value,
        "queue": state.queue,
        "priority": state.priority,
        "received_at": state.routing.received_at,
        "waiting_since": state.waiting_since,
        "sla_next_at": next_timer,
        "sla_breached": state.sla_breached,
        "claimed_by": hold.agent_id if hold and state.status == Status.IN_REVIEW else None,
        "lease_expires_at": hold.lease_expires_at if hold else None,
        "content_hash": submission.subject.content_hash or None,
        "platform": submission.platform,
        "decision_key": decision_key(submission) or None,
        # The rest of the state, to build offers without reading the records.
        "routing": _routing_document(state.routing),
        "placement": _placement_document(state.placement),
        "hold_seq": hold.seq if hold else None,
        "round": int(state.round),
        "reviews": [_verdict_document(v) for v in state.reviews],
        "excluded": sorted(state.excluded),
        "decision": _verdict_document(state.decision) if state.decision else None,
        "concurring": list(state.concurring),
        "applied_from": state.applied_from,
        "sla_warned": state.sla_warned,
        "referral": _referral_document(state.referral) if state.referral else None,
        "info_request": _info_request_document(state.info_request) if state.info_request else None,
        "sla_paused_s": state.sla_paused.total_seconds(),
    }


def view_state(document: store.Document) -> CaseState:
    hold = None
    if document.get("hold_seq") is not None and document.get("lease_expires_at") is not None:
        hold = Hold(
            document.get("claimed_by") or "", document["hold_seq"], document["lease_expires_at"]
        )
    state = CaseState(
        appeal_id=document["_id"],
        version=document["version"],
        routing=_routing(document["routing"]),
        placement=_placement(document["placement"]),
        waiting_since=document["waiting_since"],
        priority=document["priority"],
        status=Status(document["status"]),
        hold=hold,
        round=Round(document["round"]),
        reviews=tuple(_verdict(v) for v in document["reviews"]),
        excluded=frozenset(document["excluded"]),
        decision=_verdict(document["decision"]) if document.get("decision") else None,
        concurring=tuple(document["concurring"]),
        applied_from=document["applied_from"],
        sla_warned=document["sla_warned"],
        sla_breached=document["sla_breached"],
        referral=_referral(document["referral"]) if document.get("referral") else None,
        info_request=_info_request(document["info_request"])
        if document.get("info_request")
        else None,
        sla_paused=timedelta(seconds=document.get("sla_paused_s", 0.0)),
    )
    if state.status == Status.REFERRED and state.referral is None:
        # Saved before referrals came back: only the Board was referred to then.
        state = replace(state, referral=legacy_board_referral(state.waiting_since))
    return state


def _info_request_document(request: InfoRequest) -> store.Document:
    return {
        "agent_id": request.agent_id,
        "question": request.question,
        "asked_at": request.asked_at,
        "respond_by": request.respond_by,
        "seq": request.seq,
    }


def _info_request(document: store.Document) -> InfoRequest:
    return InfoRequest(
        agent_id=document["agent_id"],
        question=document["question"],
        asked_at=document["asked_at"],
        respond_by=document["respond_by"],
        seq=document["seq"],
    )


def _referral_document(referral: Referral) -> store.Document:
    return {
        "body": referral.body,
        "question": referral.question,
        "referred_at": referral.referred_at,
        "respond_by": referral.respond_by,
    }


def _referral(document: store.Document) -> Referral:
    return Referral(
        body=document["body"],
        question=document["question"],
        referred_at=document["referred_at"],
        respond_by=document["respond_by"],
    )


def _verdict_document(verdict: Verdict) -> store.Document:
    return {
        "agent_id": verdict.agent_id,
        "outcome": verdict.outcome,
        "rationale": verdict.rationale,
        "policy_cited": verdict.policy_cited,
        "facts": verdict.facts,
        "at": verdict.at,
        "by_assistant": verdict.by_assistant,
    }


def _verdict(document: store.Document) -> Verdict:
    return Verdict(
        agent_id=document["agent_id"],
        outcome=document["outcome"],
        rationale=document["rationale"],
        policy_cited=document["policy_cited"],
        facts=document["facts"],
        at=document["at"],
        by_assistant=document.get("by_assistant", False),  # recorded before it was kept: people
    )


def _placement_document(placement: Placement) -> store.Document:
    requirements = placement.requirements
    return {
        "queue_id": placement.queue_id,
        "queue": placement.queue,
        "attributes": dict(placement.attributes),
        "skills": dict(requirements.skills),
        "min_seniority": requirements.min_seniority,
        "mandatory": sorted(requirements.mandatory),
    }


def _placement(document: store.Document) -> Placement:
    return shared(
        Placement(
            queue_id=document["queue_id"],
            queue=document["queue"],
            attributes=dict(document["attributes"]),
            requirements=Requirements(
                skills=dict(document["skills"]),
                min_seniority=document.get("min_seniority"),
                mandatory=frozenset(document["mandatory"]),
            ),
        )
    )


def _routing_document(routing: Routing) -> store.Document:
    return {
        "submission": Binary(routing.facts),
        "received_at": routing.received_at,
        "rule": routing.rule,
        "reasons": list(routing.reasons),
        "sla_due_at": routing.sla_due_at,
        "sla_warn_at": routing.sla_warn_at,
        "second_review": routing.second_review,
        "causation_id": routing.causation_id,
        "ban_evasion_suspected": routing.ban_evasion_suspected,
        "appellant_pseudonym": routing.appellant_pseudonym,
        "trace_parent": routing.trace_parent,
    }


def _routing(document: store.Document) -> Routing:
    submission = appeal_pb2.SubmissionFacts()
    submission.ParseFromString(bytes(document["submission"]))
    # Cases stored before events lost their personal data hold a whole AppealSubmission: the
    # field numbers match, so its facts parse and the personal fields are unknown ones, dropped
    # here so that they are never written back.
    submission.DiscardUnknownFields()
    return Routing(
        submission=submission,
        received_at=document["received_at"],
        rule=document["rule"],
        reasons=tuple(document["reasons"]),
        sla_due_at=document["sla_due_at"],
        sla_warn_at=document["sla_warn_at"],
        second_review=document["second_review"],
        causation_id=document.get("causation_id", ""),
        ban_evasion_suspected=document.get("ban_evasion_suspected", False),
        appellant_pseudonym=document.get("appellant_pseudonym", ""),
        trace_parent=document.get("trace_parent", ""),
    )


def offer_document(offer: Offer) -> store.Document:
    return {
        "_id": offer_key(offer.appeal_id, offer.number),
        "appeal_id": offer.appeal_id,
        "number": offer.number,
        "agent_id": offer.agent_id,
        "stream_id": offer.stream_id,
        "offered_at": offer.offered_at,
        "expires_at": offer.expires_at,
        "withdrawn": offer.withdrawn,
    }


def offer(document: store.Document) -> Offer:
    return Offer(
        appeal_id=document["appeal_id"],
        number=document["number"],
        agent_id=document["agent_id"],
        stream_id=document["stream_id"],
        offered_at=document["offered_at"],
        expires_at=document["expires_at"],
        withdrawn=document.get("withdrawn", False),
    )


def agent(document: store.Document) -> AgentProfile:
    return AgentProfile(
        agent_id=document["_id"],
        skills=AgentSkills(
            languages=frozenset(document.get("languages", ())),
            platforms=frozenset(document.get("platforms", ())),
            policy_areas=frozenset(document.get("policy_areas", ())),
            seniority=document.get("seniority"),
        ),
        capacity=document.get("capacity", 0),
        registered=document.get("registered", False),
        presence=Presence(document.get("presence", Presence.OFFLINE.value)),
        presence_until=document.get("presence_until"),
    )
