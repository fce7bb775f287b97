"""gRPC adapter of the agent desk (`appeals.v1.AgentDesk` on :50052)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.grpc_server import guarded, principal
from services.routing.desk import AgentDesk

# grpc ships no type information; the servicer context is untyped.
Context: TypeAlias = Any


class AgentDeskServicer(agent_desk_pb2_grpc.AgentDeskServicer):
    def __init__(self, desk: AgentDesk, verifier: TokenVerifier, *, poll_s: float) -> None:
        self._desk = desk
        self._verifier = verifier
        self._poll_s = poll_s

    async def StreamCases(  # noqa: N802 - name fixed by the service definition
        self, request: agent_desk_pb2.StreamCasesRequest, context: Context
    ) -> AsyncIterator[agent_desk_pb2.CaseOffer]:
        async def queues() -> list[str] | None:
            agent = principal(context, self._verifier)
            return self._desk.queues_for(agent, list(request.queues))

        covered = await guarded(context, queues)
        # Offer each open case once per stream; a case claimed and released again is new work.
        offered: dict[str, str] = {}
        while True:
            cases = await guarded(context, lambda: self._desk.open_cases(covered))
            for case in cases:
                version = f"{case.status}:{case.claimed_by}:{case.lease_expires_at}"
                if offered.get(case.appeal_id) != version:
                    offered[case.appeal_id] = version
                    yield case.to_offer()
            await asyncio.sleep(self._poll_s)

    async def Claim(  # noqa: N802
        self, request: agent_desk_pb2.ClaimRequest, context: Context
    ) -> agent_desk_pb2.ClaimResponse:
        async def claim() -> agent_desk_pb2.ClaimResponse:
            case, held = await self._desk.claim(
                principal(context, self._verifier), request.appeal_id
            )
            response = agent_desk_pb2.ClaimResponse(appeal_id=case.appeal_id)
            response.case.CopyFrom(case.to_offer())
            response.lease_expires_at.FromDatetime(held.lease_expires_at)
            return response

        return await guarded(context, claim)

    async def Decide(  # noqa: N802
        self, request: agent_desk_pb2.DecideRequest, context: Context
    ) -> agent_desk_pb2.DecideResponse:
        async def decide() -> agent_desk_pb2.DecideResponse:
            decision = await self._desk.decide(
                principal(context, self._verifier),
                request.appeal_id,
                outcome=request.outcome,
                rationale=request.rationale,
                policy_cited=request.policy_cited,
            )
            return agent_desk_pb2.DecideResponse(
                appeal_id=decision.appeal_id,
                outcome=decision.outcome,  # type: ignore[arg-type]
            )

        return await guarded(context, decide)

    async def Release(  # noqa: N802
        self, request: agent_desk_pb2.ReleaseRequest, context: Context
    ) -> agent_desk_pb2.ReleaseResponse:
        async def release() -> agent_desk_pb2.ReleaseResponse:
            await self._desk.release(
                principal(context, self._verifier), request.appeal_id, request.reason
            )
            return agent_desk_pb2.ReleaseResponse(appeal_id=request.appeal_id)

        return await guarded(context, release)


def register(servicer: AgentDeskServicer) -> Any:
    def add(server: grpc.aio.Server) -> None:
        agent_desk_pb2_grpc.add_AgentDeskServicer_to_server(servicer, server)

    return add
