"""Referrals to external bodies: what a body has to decide, and its decision applied.

A case an agent refers to the Oversight Board or to a certified out-of-court dispute settlement
body (DSA Art. 21) leaves the desk (``referred``). The body reads its referrals and sends its
decision through the Referrals API (gRPC and REST), authenticated by its own token (role
``referral_body``, subject its id). The decision is binding: it is recorded like a reviewer's
final decision, so the decided event, the restore command on an overturn, the appellant's
notice, the audit entry and the freed open-appeal slot all follow the usual path; where the
policy says so, it is also applied to open appeals about identical content.

Only the live set of referrals (``referrals``, one document per case out) is ever read whole:
never the history of cases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from appeals import vocabulary
from appeals_runtime import store
from appeals_runtime.auth import PermissionDenied, Principal, Role, Scope, with_article
from appeals_runtime.errors import NotFound
from services.routing import case_rules
from services.routing import metrics as routing_metrics
from services.routing.announcements import RESTORING_OUTCOMES
from services.routing.desk import AgentDesk, DecisionResult, DecisionStatus, validate_decision
from services.routing.ledger import CaseLedger
from services.routing.model import (
    OVERSIGHT_BOARD_BODY,
    CaseState,
    Status,
    Verdict,
    out_of_court_body,
)
from services.routing.policy_file import PolicySource
from services.routing.repository import RoutingRepository

log = logging.getLogger(__name__)


def body_name(body: str) -> str:
    """How a body is named in facts people read."""
    if body == OVERSIGHT_BOARD_BODY:
        return "the Oversight Board"
    return f"the out-of-court dispute settlement body {body.removeprefix('ods:')}"


@dataclass(frozen=True)
class ReferredCase:
    case: CaseState
    overdue: bool


class ReferralDesk:
    def __init__(
        self,
        ledger: CaseLedger,
        repository: RoutingRepository,
        policies: PolicySource,
        desk: AgentDesk,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger = ledger
        self._repository = repository
        self._policies = policies
        self._desk = desk
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())

    async def referrals(self, caller: Principal, *, overdue_only: bool) -> list[ReferredCase]:
        """A body's referrals awaiting its decision (every body's, for ops), oldest due first."""
        body = _readable_body(caller)
        now = self._clock()
        pending = [
            p
            for p in await self._repository.pending_referrals()
            if (body is None or p.body == body) and (not overdue_only or now >= p.respond_by)
        ]
        found = []
        for item in sorted(pending, key=lambda p: (p.respond_by, p.appeal_id)):
            case = await self._ledger.state(item.appeal_id)
            if case is None or case.status != Status.REFERRED or case.referral is None:
                continue  # answered meanwhile
            found.append(ReferredCase(case, case.referral.overdue(now)))
        return found

    async def decide(
        self,
        caller: Principal,
        appeal_id: str,
        *,
        outcome: int,
        rationale: str,
        policy_cited: str,
        facts: str,
    ) -> DecisionResult:
        """The body's binding decision on a case referred to it (once; a retry is a no-op)."""
        caller.require(Scope.DECIDE_REFERRALS, role=Role.REFERRAL_BODY)
        body = caller.subject
        validate_decision(outcome, rationale, policy_cited, facts, facts_optional=False)
        now = self._clock()
        verdict = Verdict(body, outcome, rationale.strip(), policy_cited, facts.strip(), now)
        case = await self._ledger.state(appeal_id)
        if case is None:
            raise NotFound(f"no referral of appeal {appeal_id} to {body}")
        after, record = await self._ledger.change(
            appeal_id, lambda s: case_rules.decide_referral(s, body, verdict), known=case
        )
        recorded = after.decision if after.decision is not None else verdict
        applied: tuple[str, ...] = ()
        if record is not None and outcome in RESTORING_OUTCOMES:
            escalation = self._policies.current.escalation
            rules = (
                escalation.oversight_board
                if body == OVERSIGHT_BOARD_BODY
                else escalation.out_of_court
            )
            applied = await self._desk.apply_to_copies(
                after, recorded, allowed=rules.apply_to_identical_content, decider=body_name(body)
            )
        if record is not None:
            outcome_name = vocabulary.outcome_name(outcome)
            labels = routing_metrics.case_labels(after)
            routing_metrics.decisions.add(
                1, {**labels, "outcome": outcome_name, "status": DecisionStatus.DECIDED}
            )
            log.info(
                "referral decided",
                extra={"appeal_id": appeal_id, "body": body, "outcome": outcome_name,
                       "applied_to": list(applied)},
            )  # fmt: skip
        return DecisionResult(after, recorded, DecisionStatus.DECIDED, applied)


def _readable_body(caller: Principal) -> str | None:
    """The body whose referrals the caller reads; None: every body's (ops)."""
    if caller.role == Role.REFERRAL_BODY:
        caller.require(Scope.DECIDE_REFERRALS)
        return caller.subject
    if caller.role == Role.OPS:
        caller.require(Scope.READ)
        return None
    raise PermissionDenied(
        f"referrals are read by their body or by ops, not {with_article(caller.role)} token"
    )


class ReferralWatch:
    """Counts the referrals out and overdue per body for ops (``appeals.routing.referrals.*``)
    from the live set only, at each sweep: every instance reports the same numbers."""

    def __init__(
        self,
        repository: RoutingRepository,
        policies: PolicySource,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repository = repository
        self._policies = policies
        self._clock = clock

    async def refresh(self) -> None:
        # Every body the policy names reports, 0 when nothing is out with it.
        escalation = self._policies.current.escalation
        bodies = [OVERSIGHT_BOARD_BODY, *map(out_of_court_body, escalation.out_of_court.bodies)]
        routing_metrics.observe_referrals(
            await self._repository.pending_referrals(), self._clock(), bodies=bodies
        )
