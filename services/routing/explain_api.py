"""``POST /v1/routing/explanations``: what the routing policy does with an appeal, for ops.

The appeal is given as routing receives it, its ``SubmissionFacts`` (protobuf's JSON mapping: no
personal data), with the facts intake adds (arrival time, ban evasion suspected, repeat appeal).
Without ``policy`` the policy routing runs now answers; with it, that YAML text is checked and
used instead, so an edit can be tried before it is deployed (a bad one is a 422 naming every bad
key). Nothing is routed, stored or sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from google.protobuf import json_format
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from appeals.v1 import appeal_pb2
from appeals_runtime.auth import Principal, Role, Scope
from appeals_runtime.errors import FieldViolation, Unprocessable, ValidationFailed
from appeals_runtime.http import Caller
from services.routing.explain import explain
from services.routing.policy import AppealFacts
from services.routing.policy_file import PolicyError, PolicySource, parse_policy

MAX_POLICY_CHARS = 256 * 1024


class ExplanationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # appeals.v1.SubmissionFacts in protobuf's JSON mapping.
    submission: dict[str, Any]
    received_at: AwareDatetime | None = None
    ban_evasion_suspected: bool = False
    repeat_appeal: bool = False
    # A routing policy's YAML text to use instead of the one routing runs.
    policy: str | None = Field(default=None, max_length=MAX_POLICY_CHARS)


async def _operator(principal: Caller) -> Principal:
    principal.require(Scope.READ, role=Role.OPS)
    return principal


def explain_router(policies: PolicySource) -> APIRouter:
    router = APIRouter(prefix="/v1/routing", tags=["routing policy"])

    @router.post("/explanations", dependencies=[Depends(_operator)])
    async def explanation(request: ExplanationIn) -> dict[str, Any]:
        """The rule, queue, requirements, priority, due times and second review, with reasons."""
        rules = policies.current
        if request.policy is not None:
            try:
                rules = parse_policy(request.policy, source="policy")
            except PolicyError as error:
                raise Unprocessable(str(error), code="invalid_policy") from error
        facts = AppealFacts(
            _submission(request.submission),
            (request.received_at or datetime.now(UTC)).astimezone(UTC),
            ban_evasion_suspected=request.ban_evasion_suspected,
            repeat_appeal=request.repeat_appeal,
        )
        return explain(rules, facts)

    return router


def _submission(document: dict[str, Any]) -> appeal_pb2.SubmissionFacts:
    try:
        return json_format.ParseDict(document, appeal_pb2.SubmissionFacts())
    except json_format.ParseError as error:
        raise ValidationFailed([FieldViolation("submission", str(error))]) from error
