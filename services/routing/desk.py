"""The agent desk: offering cases to reviewers, claims with leases, decisions, releases.

Every step that changes a case publishes its lifecycle event after the store write that makes it
true; event ids are derived from the step (appeal id + claim epoch), so retrying a step after a
crash republishes the same event, which consumers deduplicate.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from appeals.v1 import appeal_pb2, commands_pb2, events_pb2
from appeals_runtime import store, topics, vocabulary
from appeals_runtime.auth import PermissionDenied, Principal, Role, Scope
from appeals_runtime.errors import Conflict, FieldViolation, NotFound, ValidationFailed
from appeals_runtime.events import derived_event_id, new_event
from appeals_runtime.kafka.producer import EventProducer
from services.routing.model import Case, Claim, Decision
from services.routing.repository import RoutingRepository

MAX_RATIONALE_CHARS = 5000
DECIDABLE_OUTCOMES = (appeal_pb2.OUTCOME_UPHELD, appeal_pb2.OUTCOME_OVERTURNED)
_POLICY = re.compile(r"^[a-z][a-z0-9_]*$")

log = logging.getLogger(__name__)


def require_agent(principal: Principal) -> None:
    principal.require(Scope.WORK_CASES, role=Role.AGENT)


class AgentDesk:
    def __init__(
        self,
        repository: RoutingRepository,
        producer: EventProducer,
        *,
        lease: timedelta,
        service_name: str = "routing",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repository = repository
        self._producer = producer
        self._lease = lease
        self._service_name = service_name
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())

    def queues_for(self, agent: Principal, requested: list[str]) -> list[str] | None:
        """The queues an agent's stream covers; None means every queue."""
        require_agent(agent)
        for queue in requested:
            if not agent.works_queue(queue):
                raise PermissionDenied(f"agent {agent.subject} does not work queue {queue!r}")
        if requested:
            return requested
        return None if "*" in agent.queues else sorted(agent.queues)

    async def open_cases(self, queues: list[str] | None, limit: int = 50) -> list[Case]:
        return await self._repository.open_cases(queues, self._clock(), limit)

    async def claim(self, agent: Principal, appeal_id: str) -> tuple[Case, Claim]:
        require_agent(agent)
        case = await self._case_for(agent, appeal_id)
        if case.status == "decided":
            raise Conflict(f"appeal {appeal_id} is already decided")
        now = self._clock()
        latest = await self._repository.latest_claim(appeal_id)
        if latest is not None and latest.active(now):
            if latest.agent_id == agent.subject:
                return case, latest  # claiming what you hold is a no-op, not an error
            raise Conflict(f"appeal {appeal_id} is claimed by another reviewer")
        claim = Claim(
            appeal_id=appeal_id,
            epoch=(latest.epoch + 1) if latest else 1,
            agent_id=agent.subject,
            claimed_at=now,
            lease_expires_at=now + self._lease,
        )
        if not await self._repository.insert_claim(claim):
            raise Conflict(f"appeal {appeal_id} was just claimed by another reviewer")
        await self._repository.mark_case(
            appeal_id,
            "in_review",
            claimed_by=agent.subject,
            lease_expires_at=claim.lease_expires_at,
        )
        claimed = events_pb2.CaseClaimed(agent_id=agent.subject, queue=case.queue)
        claimed.lease_expires_at.FromDatetime(claim.lease_expires_at)
        await self._publish(appeal_id, f"claimed#{claim.epoch}", now, claimed=claimed)
        log.info("case claimed", extra={"appeal_id": appeal_id, "agent": agent.subject,
                                        "queue": case.queue, "epoch": claim.epoch})  # fmt: skip
        return case, claim

    async def decide(
        self,
        agent: Principal,
        appeal_id: str,
        *,
        outcome: int,
        rationale: str,
        policy_cited: str,
    ) -> Decision:
        require_agent(agent)
        _validate_decision(outcome, rationale, policy_cited)
        case = await self._case_for(agent, appeal_id)
        now = self._clock()
        decision = await self._record_decision(
            Decision(appeal_id, agent.subject, outcome, rationale, policy_cited, now)
        )
        await self._repository.mark_case(appeal_id, "decided", lease_expires_at=None)
        decided_id = await self._publish(
            appeal_id,
            "decided",
            decision.decided_at,
            decided=events_pb2.AppealDecided(
                agent_id=decision.agent_id,
                outcome=decision.outcome,  # type: ignore[arg-type]
                rationale=decision.rationale,
                policy_cited=decision.policy_cited,
                platform=case.submission.platform,
            ),
        )
        if decision.outcome == appeal_pb2.OUTCOME_OVERTURNED:
            await self._command_restore(case, decided_id, decision.decided_at)
        log.info(
            "appeal decided",
            extra={"appeal_id": appeal_id, "agent": decision.agent_id, "queue": case.queue,
                   "outcome": vocabulary.outcome_name(decision.outcome)},
        )  # fmt: skip
        return decision

    async def _record_decision(self, decision: Decision) -> Decision:
        """Record the decision once. Retrying the same decision returns the recorded one, so
        its events are published again (same ids) in case the first attempt died before them."""
        existing = await self._repository.get_decision(decision.appeal_id)
        if existing is None:
            claim = await self._repository.latest_claim(decision.appeal_id)
            holds = claim is not None and claim.agent_id == decision.agent_id
            if not holds or not claim or not claim.active(decision.decided_at):
                raise Conflict(
                    f"claim appeal {decision.appeal_id} before deciding it (or your lease ran out)"
                )
            if await self._repository.insert_decision(decision):
                return decision
            existing = await self._repository.get_decision(decision.appeal_id)
        same = existing is not None and (existing.agent_id, existing.outcome) == (
            decision.agent_id,
            decision.outcome,
        )
        if not same or existing is None:
            raise Conflict(f"appeal {decision.appeal_id} is already decided")
        return existing

    async def release(self, agent: Principal, appeal_id: str, reason: str) -> None:
        require_agent(agent)
        case = await self._case_for(agent, appeal_id)
        now = self._clock()
        claim = await self._repository.latest_claim(appeal_id)
        if claim is None or claim.agent_id != agent.subject or not claim.active(now):
            raise Conflict(f"you hold no claim on appeal {appeal_id}")
        await self._repository.release_claim(claim)
        await self._repository.mark_case(
            appeal_id, "queued", claimed_by=None, lease_expires_at=None
        )
        await self._publish(
            appeal_id,
            f"released#{claim.epoch}",
            now,
            released=events_pb2.CaseReleased(
                agent_id=agent.subject, queue=case.queue, reason=reason
            ),
        )

    async def _case_for(self, agent: Principal, appeal_id: str) -> Case:
        case = await self._repository.get_case(appeal_id)
        # Agents outside the case's queue learn nothing about it, not even that it exists.
        if case is None or not agent.works_queue(case.queue):
            raise NotFound(f"no case {appeal_id} in your queues")
        return case

    async def _publish(
        self, appeal_id: str, step: str, at: datetime, **payload: events_pb2.AppealEvent | object
    ) -> str:
        event = new_event(
            event_id=derived_event_id(appeal_id, step),
            appeal_id=appeal_id,
            producer=self._service_name,
            occurred_at=at,
            **payload,  # type: ignore[arg-type]
        )
        await self._producer.publish(topics.APPEAL_LIFECYCLE, event)
        return event.event_id

    async def _command_restore(self, case: Case, decided_event_id: str, at: datetime) -> None:
        command = commands_pb2.RestoreCommand(
            command_id=derived_event_id(case.appeal_id, "restore"),
            appeal_id=case.appeal_id,
            causation_id=decided_event_id,
            platform=case.submission.platform,
            subject=case.submission.subject,
            original_decision_id=case.submission.decision.id,
        )
        command.issued_at.FromDatetime(at)
        await self._producer.publish(
            topics.restore_commands_topic(case.submission.platform), command
        )


def _validate_decision(outcome: int, rationale: str, policy_cited: str) -> None:
    violations = []
    if outcome not in DECIDABLE_OUTCOMES:
        violations.append(FieldViolation("outcome", "must be OUTCOME_UPHELD or OUTCOME_OVERTURNED"))
    if not rationale.strip():
        violations.append(FieldViolation("rationale", "is required: the person is owed reasons"))
    elif len(rationale) > MAX_RATIONALE_CHARS:
        violations.append(
            FieldViolation("rationale", f"must be at most {MAX_RATIONALE_CHARS} characters")
        )
    if not _POLICY.match(policy_cited):
        violations.append(FieldViolation("policy_cited", "is required, in snake_case"))
    if violations:
        raise ValidationFailed(violations)
