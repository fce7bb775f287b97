"""The Referrals API: gRPC (`appeals.v1.Referrals`, on the desk's port) and REST (/v1/referrals).

Both are thin adapters of :class:`services.routing.referrals.ReferralDesk`: the same checks, the
same errors (NOT_FOUND / 404 for another body's referral, so existence never leaks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

import grpc
from fastapi import APIRouter, Query
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, ConfigDict, Field

from appeals import vocabulary
from appeals.v1 import referrals_pb2, referrals_pb2_grpc
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.grpc_server import Registration, guarded, principal
from appeals_runtime.http import Caller
from services.routing.announcements import referral_package
from services.routing.referrals import ReferralDesk, ReferredCase

# grpc ships no type information; the servicer context is untyped.
Context: TypeAlias = Any


def referral_message(item: ReferredCase) -> referrals_pb2.Referral:
    referral = item.case.referral
    assert referral is not None
    message = referrals_pb2.Referral(
        appeal_id=item.case.appeal_id,
        body=referral.body,
        overdue=item.overdue,
        package=referral_package(item.case),
    )
    message.referred_at.FromDatetime(referral.referred_at)
    message.respond_by.FromDatetime(referral.respond_by)
    return message


class ReferralsServicer(referrals_pb2_grpc.ReferralsServicer):
    def __init__(self, referrals: ReferralDesk, verifier: TokenVerifier) -> None:
        self._referrals = referrals
        self._verifier = verifier

    async def ListReferrals(  # noqa: N802
        self, request: referrals_pb2.ListReferralsRequest, context: Context
    ) -> referrals_pb2.ListReferralsResponse:
        async def listed() -> referrals_pb2.ListReferralsResponse:
            found = await self._referrals.referrals(
                principal(context, self._verifier), overdue_only=request.overdue_only
            )
            return referrals_pb2.ListReferralsResponse(
                referrals=[referral_message(item) for item in found]
            )

        return await guarded(context, listed)

    async def DecideReferral(  # noqa: N802
        self, request: referrals_pb2.DecideReferralRequest, context: Context
    ) -> referrals_pb2.DecideReferralResponse:
        async def decide() -> referrals_pb2.DecideReferralResponse:
            result = await self._referrals.decide(
                principal(context, self._verifier),
                request.appeal_id,
                outcome=request.outcome,
                rationale=request.rationale,
                policy_cited=request.policy_cited,
                facts=request.facts,
            )
            return referrals_pb2.DecideReferralResponse(
                appeal_id=result.case.appeal_id,
                outcome=result.verdict.outcome,  # type: ignore[arg-type]
                applied_to=list(result.applied_to),
            )

        return await guarded(context, decide)


def register(servicer: ReferralsServicer) -> Registration:
    def add(server: grpc.aio.Server) -> None:
        referrals_pb2_grpc.add_ReferralsServicer_to_server(servicer, server)

    return Registration(referrals_pb2.DESCRIPTOR.services_by_name["Referrals"].full_name, add)


# --- REST ---------------------------------------------------------------------------------------


class ReferralDecision(BaseModel):
    """A body's decision on a case referred to it."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["upheld", "overturned", "partially_overturned"]
    rationale: str = Field(min_length=1, max_length=5000, description="Why, for the appellant")
    policy_cited: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="e.g. hate_speech")
    facts: str = Field(min_length=1, max_length=5000)


class ReferralDecided(BaseModel):
    appeal_id: str
    outcome: str
    applied_to: list[str]


class ReferralOut(BaseModel):
    appeal_id: str
    body: str
    referred_at: datetime
    respond_by: datetime
    overdue: bool
    # The case package (facts, reviews, question), as the protobuf JSON mapping writes it.
    package: dict[str, Any]


def rest_router(referrals: ReferralDesk) -> APIRouter:
    router = APIRouter(prefix="/v1/referrals", tags=["referrals"])

    @router.get("")
    async def list_referrals(
        principal: Caller, overdue_only: Annotated[bool, Query()] = False
    ) -> list[ReferralOut]:
        """A body's referrals awaiting its decision (ops: every body's), oldest due first."""
        found = await referrals.referrals(principal, overdue_only=overdue_only)
        out = []
        for item in found:
            referral = item.case.referral
            assert referral is not None
            out.append(
                ReferralOut(
                    appeal_id=item.case.appeal_id,
                    body=referral.body,
                    referred_at=referral.referred_at,
                    respond_by=referral.respond_by,
                    overdue=item.overdue,
                    package=MessageToDict(referral_package(item.case)),
                )
            )
        return out

    @router.post("/{appeal_id}/decision")
    async def decide_referral(
        appeal_id: str, decision: ReferralDecision, principal: Caller
    ) -> ReferralDecided:
        """The body's binding decision: applied at once (restored on an overturn), notified to
        the appellant and audited. Repeating it is a no-op; a different one is refused (409)."""
        result = await referrals.decide(
            principal,
            appeal_id,
            outcome=vocabulary.OUTCOMES[decision.outcome],
            rationale=decision.rationale,
            policy_cited=decision.policy_cited,
            facts=decision.facts,
        )
        return ReferralDecided(
            appeal_id=result.case.appeal_id,
            outcome=vocabulary.outcome_name(result.verdict.outcome),
            applied_to=list(result.applied_to),
        )

    return router
