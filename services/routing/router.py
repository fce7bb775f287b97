"""Placing a submitted appeal: the policy decides, the ledger records it once."""

from __future__ import annotations

import logging
from datetime import datetime

from appeals.events import occurred_at
from appeals.v1 import appeal_pb2, events_pb2
from appeals_runtime import store, tracing
from services.routing import case_rules, metrics
from services.routing import policy as routing_policy
from services.routing.announcements import info_requested_event_id
from services.routing.documents import decision_key
from services.routing.ledger import CaseLedger
from services.routing.model import CaseRecord, CaseState, Kind, Routing
from services.routing.policy_file import PolicySource
from services.routing.repository import RoutingRepository

log = logging.getLogger(__name__)


class Router:
    def __init__(
        self, ledger: CaseLedger, repository: RoutingRepository, policies: PolicySource
    ) -> None:
        self._ledger = ledger
        self._repository = repository
        self._policies = policies

    async def route_submitted(self, event: events_pb2.AppealEvent) -> CaseState:
        submitted = event.submitted
        submission = submitted.facts
        received_at = store.stored_time(occurred_at(event))
        facts = routing_policy.AppealFacts(
            submission=submission,
            received_at=received_at,
            ban_evasion_suspected=submitted.ban_evasion_suspected,
            repeat_appeal=await self._repeat_appeal(submission, event.appeal_id, received_at),
        )
        decision = routing_policy.route(self._policies.current, facts)
        routed = CaseRecord(
            appeal_id=event.appeal_id,
            seq=1,
            kind=Kind.ROUTED,
            at=received_at,
            placement=decision.placement,
            priority=decision.priority,
            routing=Routing(
                submission=submission,
                received_at=received_at,
                rule=decision.rule,
                reasons=decision.reasons,
                sla_due_at=store.stored_time(decision.sla.due_at),
                sla_warn_at=store.stored_time(decision.sla.warn_at),
                second_review=decision.second_review,
                causation_id=event.event_id,
                ban_evasion_suspected=submitted.ban_evasion_suspected,
                appellant_pseudonym=submitted.appellant_pseudonym,
                trace_parent=tracing.current_traceparent(),
            ),
        )
        state, created = await self._ledger.open(routed)
        if not created:
            return state  # a redelivery: announced again above, nothing new to count or log
        metrics.record_routed(state)
        log.info(
            "appeal routed",
            extra={"appeal_id": event.appeal_id, "queue": state.queue, "rule": state.routing.rule,
                   "priority": state.priority},
        )  # fmt: skip
        return state

    async def information_provided(self, event: events_pb2.AppealEvent) -> CaseState | None:
        """The appellant answered: the case returns to its queue, where whoever claims it reads
        the answer from intake. An answer to a request no longer open changes nothing."""
        appeal_id = event.appeal_id
        case = await self._ledger.state(appeal_id)
        request = case.info_request if case is not None else None
        if case is None or request is None:
            return case
        if info_requested_event_id(appeal_id, request.seq) != event.info_provided.request_event_id:
            return case
        at = store.stored_time(occurred_at(event))
        after, record = await self._ledger.change(
            appeal_id, lambda s: case_rules.info_received(s, request.seq, at), known=case
        )
        if record is not None:
            log.info("information provided", extra={"appeal_id": appeal_id, "queue": after.queue})
        return after

    async def _repeat_appeal(
        self, submission: appeal_pb2.SubmissionFacts, appeal_id: str, at: datetime
    ) -> bool:
        """Whether an earlier appeal contested the same original decision."""
        key = decision_key(submission)
        if not key:
            return False
        return await self._repository.first_appeal_against(key, appeal_id, at) != appeal_id
