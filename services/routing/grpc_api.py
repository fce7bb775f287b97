"""gRPC adapter of the agent desk (`appeals.v1.AgentDesk` on :50052)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc
from appeals_runtime.auth import Principal, TokenVerifier
from appeals_runtime.errors import FieldViolation, ValidationFailed
from appeals_runtime.grpc_server import Registration, guarded, principal
from services.routing import announcements
from services.routing.agents import require_agent
from services.routing.desk import ESCALATION_TARGETS_TEXT, AgentDesk, DecisionStatus
from services.routing.model import AgentProfile, CaseState, Offer, Presence, Round, Target
from services.routing.policy import AgentSkills

# grpc ships no type information; the servicer context is untyped.
Context: TypeAlias = Any

# How often an open stream renews its agent's presence (well within the presence TTL).
PRESENCE_RENEW_S = 5.0

_PRESENCE_TO_PROTO = {
    Presence.ONLINE: agent_desk_pb2.PRESENCE_ONLINE,
    Presence.AWAY: agent_desk_pb2.PRESENCE_AWAY,
    Presence.OFFLINE: agent_desk_pb2.PRESENCE_OFFLINE,
}
_PRESENCE_FROM_PROTO = {number: presence for presence, number in _PRESENCE_TO_PROTO.items()}
_TARGETS = {
    agent_desk_pb2.ESCALATION_TARGET_SENIOR: Target.SENIOR,
    agent_desk_pb2.ESCALATION_TARGET_LEGAL: Target.LEGAL,
    agent_desk_pb2.ESCALATION_TARGET_OVERSIGHT_BOARD: Target.OVERSIGHT_BOARD,
    agent_desk_pb2.ESCALATION_TARGET_OUT_OF_COURT: Target.OUT_OF_COURT,
}
_STATUSES = {
    DecisionStatus.DECIDED: agent_desk_pb2.DECISION_STATUS_DECIDED,
    DecisionStatus.SECOND_REVIEW_PENDING: agent_desk_pb2.DECISION_STATUS_SECOND_REVIEW_PENDING,
    DecisionStatus.ESCALATED_FOR_DISAGREEMENT: (
        agent_desk_pb2.DECISION_STATUS_ESCALATED_FOR_DISAGREEMENT
    ),
}
_ROUNDS = {
    Round.FIRST: agent_desk_pb2.REVIEW_ROUND_FIRST,
    Round.SECOND_BLIND: agent_desk_pb2.REVIEW_ROUND_SECOND_BLIND,
    Round.SENIOR_ADJUDICATION: agent_desk_pb2.REVIEW_ROUND_SENIOR_ADJUDICATION,
}


def offer_message(case: CaseState, offer: Offer | None = None) -> agent_desk_pb2.CaseOffer:
    """A case as offered: its facts, never the appellant's statement (only a claim reads it)."""
    message = agent_desk_pb2.CaseOffer(
        appeal_id=case.appeal_id,
        queue=case.queue,
        priority=case.priority,
        facts=case.routing.submission,
        rule=case.routing.rule,
        priority_reasons=list(case.routing.reasons),
        round=_ROUNDS[case.round],
    )
    message.sla_due_at.FromDatetime(case.sla_due_at)
    message.received_at.FromDatetime(case.routing.received_at)
    if offer is not None:
        message.offer_expires_at.FromDatetime(offer.expires_at)
    if case.round == Round.SENIOR_ADJUDICATION:  # a blind second review shows nothing earlier
        message.prior_reviews.extend(announcements.prior_review(v) for v in case.reviews)
    return message


def profile_message(profile: AgentProfile, now_presence: Presence) -> agent_desk_pb2.AgentProfile:
    skills = profile.skills
    return agent_desk_pb2.AgentProfile(
        agent_id=profile.agent_id,
        languages=sorted(skills.languages),
        platforms=sorted(skills.platforms),
        policy_areas=sorted(skills.policy_areas),
        seniority=skills.seniority or "",
        capacity=profile.capacity,
        presence=_PRESENCE_TO_PROTO[now_presence],
    )


class AgentDeskServicer(agent_desk_pb2_grpc.AgentDeskServicer):
    def __init__(self, desk: AgentDesk, verifier: TokenVerifier, *, poll_s: float) -> None:
        self._desk = desk
        self._verifier = verifier
        self._poll_s = poll_s

    async def RegisterAgent(  # noqa: N802 - name fixed by the service definition
        self, request: agent_desk_pb2.RegisterAgentRequest, context: Context
    ) -> agent_desk_pb2.AgentProfile:
        async def register() -> agent_desk_pb2.AgentProfile:
            given = request.profile
            skills = AgentSkills(
                languages=frozenset(v.strip().lower() for v in given.languages),
                platforms=frozenset(v.strip().lower() for v in given.platforms),
                policy_areas=frozenset(v.strip().lower() for v in given.policy_areas),
                seniority=given.seniority.strip() or None,
            )
            profile = await self._desk.register(
                principal(context, self._verifier), skills, given.capacity
            )
            return profile_message(profile, profile.presence)

        return await guarded(context, register)

    def _agent(self, context: Context) -> Principal:
        """The caller, who must be an agent: checked before the request is, so that nobody
        else learns anything of the desk's rules from its answers."""
        agent = principal(context, self._verifier)
        require_agent(agent)
        return agent

    async def SetPresence(  # noqa: N802
        self, request: agent_desk_pb2.SetPresenceRequest, context: Context
    ) -> agent_desk_pb2.SetPresenceResponse:
        async def set_presence() -> agent_desk_pb2.SetPresenceResponse:
            agent = self._agent(context)
            presence = _PRESENCE_FROM_PROTO.get(request.presence)
            if presence is None:
                raise ValidationFailed([FieldViolation("presence", "online, away or offline")])
            chosen = await self._desk.set_presence(agent, presence)
            return agent_desk_pb2.SetPresenceResponse(presence=_PRESENCE_TO_PROTO[chosen])

        return await guarded(context, set_presence)

    async def StreamCases(  # noqa: N802
        self, request: agent_desk_pb2.StreamCasesRequest, context: Context
    ) -> AsyncIterator[agent_desk_pb2.CaseOffer]:
        async def start() -> tuple[Principal, list[str] | None]:
            agent = principal(context, self._verifier)
            covered = self._desk.queues_for(agent, list(request.queues))
            await self._desk.stream_opened(agent)
            return agent, covered

        agent, covered = await guarded(context, start)
        stream_id = uuid.uuid4().hex
        renewed = time.monotonic()
        try:
            while True:
                offers = await guarded(
                    context, lambda: self._desk.next_offers(agent, covered, stream_id)
                )
                for offered in offers:
                    yield offer_message(offered.case, offered.offer)
                if time.monotonic() - renewed >= PRESENCE_RENEW_S:
                    await guarded(context, lambda: self._desk.keep_online(agent))
                    renewed = time.monotonic()
                await asyncio.sleep(self._poll_s)
        finally:
            # The agent went away: its reservations go back at once, not when they lapse.
            with contextlib.suppress(Exception):
                await self._desk.stream_closed(agent, stream_id)

    async def Claim(  # noqa: N802
        self, request: agent_desk_pb2.ClaimRequest, context: Context
    ) -> agent_desk_pb2.ClaimResponse:
        async def claim() -> agent_desk_pb2.ClaimResponse:
            review = await self._desk.claim_for_review(
                principal(context, self._verifier), request.appeal_id
            )
            case = review.case
            response = agent_desk_pb2.ClaimResponse(appeal_id=case.appeal_id)
            response.case.CopyFrom(offer_message(case))
            response.case.statement = review.statement
            response.case.attachments.extend(review.attachments)
            response.case.information.extend(review.information)
            assert case.hold is not None
            response.lease_expires_at.FromDatetime(case.hold.lease_expires_at)
            return response

        return await guarded(context, claim)

    async def Heartbeat(  # noqa: N802
        self, request: agent_desk_pb2.HeartbeatRequest, context: Context
    ) -> agent_desk_pb2.HeartbeatResponse:
        async def heartbeat() -> agent_desk_pb2.HeartbeatResponse:
            agent = principal(context, self._verifier)
            case = await self._desk.heartbeat(agent, request.appeal_id)
            response = agent_desk_pb2.HeartbeatResponse(appeal_id=case.appeal_id)
            assert case.hold is not None
            response.lease_expires_at.FromDatetime(case.hold.lease_expires_at)
            return response

        return await guarded(context, heartbeat)

    async def Decide(  # noqa: N802
        self, request: agent_desk_pb2.DecideRequest, context: Context
    ) -> agent_desk_pb2.DecideResponse:
        async def decide() -> agent_desk_pb2.DecideResponse:
            result = await self._desk.decide(
                principal(context, self._verifier),
                request.appeal_id,
                outcome=request.outcome,
                rationale=request.rationale,
                policy_cited=request.policy_cited,
                facts=request.facts,
            )
            return agent_desk_pb2.DecideResponse(
                appeal_id=result.case.appeal_id,
                outcome=result.verdict.outcome,  # type: ignore[arg-type]
                status=_STATUSES[result.status],
                applied_to=list(result.applied_to),
            )

        return await guarded(context, decide)

    async def Escalate(  # noqa: N802
        self, request: agent_desk_pb2.EscalateRequest, context: Context
    ) -> agent_desk_pb2.EscalateResponse:
        async def escalate() -> agent_desk_pb2.EscalateResponse:
            agent = self._agent(context)
            target = _TARGETS.get(request.target)
            if target is None:
                raise ValidationFailed([FieldViolation("target", ESCALATION_TARGETS_TEXT)])
            case = await self._desk.escalate(
                agent,
                request.appeal_id,
                target=target,
                reason=request.reason,
                question=request.question,
                body=request.body,
            )
            queue = "" if case.final else case.queue
            return agent_desk_pb2.EscalateResponse(appeal_id=case.appeal_id, queue=queue)

        return await guarded(context, escalate)

    async def Release(  # noqa: N802
        self, request: agent_desk_pb2.ReleaseRequest, context: Context
    ) -> agent_desk_pb2.ReleaseResponse:
        async def release() -> agent_desk_pb2.ReleaseResponse:
            await self._desk.release(
                principal(context, self._verifier), request.appeal_id, request.reason
            )
            return agent_desk_pb2.ReleaseResponse(appeal_id=request.appeal_id)

        return await guarded(context, release)

    async def Transfer(  # noqa: N802
        self, request: agent_desk_pb2.TransferRequest, context: Context
    ) -> agent_desk_pb2.TransferResponse:
        async def transfer() -> agent_desk_pb2.TransferResponse:
            case = await self._desk.transfer(
                principal(context, self._verifier),
                request.appeal_id,
                to_queue=request.to_queue,
                reason=request.reason,
            )
            return agent_desk_pb2.TransferResponse(appeal_id=case.appeal_id, queue=case.queue)

        return await guarded(context, transfer)

    async def RequestInformation(  # noqa: N802
        self, request: agent_desk_pb2.RequestInformationRequest, context: Context
    ) -> agent_desk_pb2.RequestInformationResponse:
        async def ask() -> agent_desk_pb2.RequestInformationResponse:
            case = await self._desk.request_information(
                principal(context, self._verifier), request.appeal_id, question=request.question
            )
            response = agent_desk_pb2.RequestInformationResponse(appeal_id=case.appeal_id)
            if case.info_request is not None:
                response.respond_by.FromDatetime(case.info_request.respond_by)
            return response

        return await guarded(context, ask)


def register(servicer: AgentDeskServicer) -> Registration:
    def add(server: grpc.aio.Server) -> None:
        agent_desk_pb2_grpc.add_AgentDeskServicer_to_server(servicer, server)

    return Registration(agent_desk_pb2.DESCRIPTOR.services_by_name["AgentDesk"].full_name, add)
