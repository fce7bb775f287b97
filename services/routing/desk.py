"""The agent desk: what agents are offered, and what they do with a case.

Every change to a case goes through the ledger (checked against the case's records, appended
once, then announced); this module decides what is asked of the ledger and who may ask it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from appeals import vocabulary
from appeals.v1 import appeal_pb2
from appeals_runtime import store
from appeals_runtime.auth import PermissionDenied, Principal
from appeals_runtime.errors import Conflict, FieldViolation, NotFound, ValidationFailed
from appeals_runtime.intake_client import ParticularsSource
from services.routing import case_rules, metrics
from services.routing import policy as routing_policy
from services.routing.agents import AgentRegistry, require_agent
from services.routing.announcements import RESTORING_OUTCOMES
from services.routing.board import CaseBoard
from services.routing.ledger import CaseLedger
from services.routing.model import (
    OVERSIGHT_BOARD_BODY,
    REFERRAL_TARGETS,
    AgentProfile,
    CaseState,
    Presence,
    Round,
    Status,
    Target,
    Verdict,
    out_of_court_body,
)
from services.routing.offers import OfferBook, Offered
from services.routing.policy_file import PolicySource
from services.routing.repository import RoutingRepository

MAX_RATIONALE_CHARS = 5000
MAX_FACTS_CHARS = 5000
MAX_QUESTION_CHARS = 2000
DECIDABLE_OUTCOMES = (
    appeal_pb2.OUTCOME_UPHELD,
    appeal_pb2.OUTCOME_OVERTURNED,
    appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED,
)
AGENT_ESCALATIONS = (Target.SENIOR, Target.LEGAL, Target.OVERSIGHT_BOARD, Target.OUT_OF_COURT)
ESCALATION_TARGETS_TEXT = "must be senior, legal, oversight_board or out_of_court"
_POLICY = re.compile(r"^[a-z][a-z0-9_]*$")

log = logging.getLogger(__name__)


class DecisionStatus:
    DECIDED = "decided"
    SECOND_REVIEW_PENDING = "second_review_pending"
    ESCALATED_FOR_DISAGREEMENT = "escalated_for_disagreement"


@dataclass(frozen=True)
class ReviewFile:
    """A claimed case with what only its reviewer sees: the appellant's own words and evidence,
    and their answers to requests for information, read from intake for this answer and stored
    nowhere in routing."""

    case: CaseState
    statement: str
    attachments: tuple[appeal_pb2.Attachment, ...]
    information: tuple[appeal_pb2.InformationExchange, ...] = ()


@dataclass(frozen=True)
class DecisionResult:
    case: CaseState
    verdict: Verdict
    status: str
    applied_to: tuple[str, ...] = ()


class AgentDesk:
    def __init__(
        self,
        ledger: CaseLedger,
        repository: RoutingRepository,
        policies: PolicySource,
        particulars: ParticularsSource,
        board: CaseBoard,
        *,
        lease: timedelta,
        presence_ttl: timedelta = timedelta(seconds=15),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger = ledger
        self._policies = policies
        self._particulars = particulars
        self._board = board
        self._offers = OfferBook(ledger, repository, policies, board)
        self._lease = lease
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())
        self.agents = AgentRegistry(
            repository, policies, presence_ttl=presence_ttl, clock=self._clock
        )

    @property
    def offers(self) -> OfferBook:
        return self._offers

    # --- agents (services.routing.agents) -----------------------------------------------------

    async def register(
        self, agent: Principal, skills: routing_policy.AgentSkills, capacity: int
    ) -> AgentProfile:
        return await self.agents.register(agent, skills, capacity)

    async def profile(self, agent: Principal) -> AgentProfile:
        return await self.agents.profile(agent)

    async def set_presence(self, agent: Principal, presence: Presence) -> Presence:
        return await self.agents.set_presence(agent, presence)

    async def stream_opened(self, agent: Principal) -> None:
        await self.agents.keep_online(agent)

    async def keep_online(self, agent: Principal) -> None:
        await self.agents.keep_online(agent)

    async def stream_closed(self, agent: Principal, stream_id: str) -> None:
        # The agent went away: its reservations go back at once, not when they lapse.
        await self._offers.withdraw_stream(agent.subject, stream_id)
        await self.agents.went_offline(agent)

    # --- reading ----------------------------------------------------------------------------

    def queues_for(self, agent: Principal, requested: list[str]) -> list[str] | None:
        """The queues an agent's stream covers; None means every queue."""
        require_agent(agent)
        for queue in requested:
            if not agent.works_queue(queue):
                raise PermissionDenied(f"agent {agent.subject} does not work queue {queue!r}")
        if requested:
            return requested
        return None if "*" in agent.queues else sorted(agent.queues)

    async def open_cases(self, queues: list[str] | None, limit: int = 50) -> list[CaseState]:
        """Cases waiting for a reviewer, most urgent first, then oldest (from the board)."""
        return self._board.offerable(queues, self._clock(), limit)

    async def next_offers(
        self, agent: Principal, queues: list[str] | None, stream_id: str
    ) -> list[Offered]:
        require_agent(agent)
        return await self._offers.next_offers(
            await self.agents.recent_profile(agent), queues, stream_id, self._clock()
        )

    # --- work -------------------------------------------------------------------------------

    async def claim(self, agent: Principal, appeal_id: str) -> CaseState:
        """Take the case exclusively, with a lease; claiming what you hold is a no-op."""
        require_agent(agent)
        now = self._clock()
        return await self._take(agent, await self._claimable(agent, appeal_id, now), now)

    async def claim_for_review(self, agent: Principal, appeal_id: str) -> ReviewFile:
        """Claim the case and read, from intake, the statement and attachments its reviewer needs.

        Read first: when intake cannot answer, nothing is claimed and asking again is all it
        takes (claiming what you hold is a no-op, so a retry after a lost answer reads again).
        """
        require_agent(agent)
        now = self._clock()
        case = await self._claimable(agent, appeal_id, now)
        particulars = await self._particulars.get(appeal_id)
        taken = await self._take(agent, case, now)
        return ReviewFile(
            taken,
            particulars.statement,
            tuple(particulars.attachments),
            tuple(particulars.information),
        )

    async def _claimable(self, agent: Principal, appeal_id: str, now: datetime) -> CaseState:
        case = await self._visible_case(agent, appeal_id, now)
        if not case.held_by(agent.subject, now):
            await self._check_can_take(agent, case, now)
        return case

    async def _take(self, agent: Principal, case: CaseState, now: datetime) -> CaseState:
        appeal_id = case.appeal_id
        # An expired claim is released on record first, so the trail shows where it went.
        case, _ = await self._ledger.change(
            appeal_id, lambda s: case_rules.expire_lease(s, now), known=case
        )
        offered_to = await self._offers.offered_to(appeal_id, now)
        after, record = await self._ledger.change(
            appeal_id,
            lambda s: case_rules.claim(s, agent.subject, now, self._lease, offered_to=offered_to),
            known=case,
        )
        if record is not None:
            self._offers.claimed(appeal_id)
            log.info("case claimed", extra={"appeal_id": appeal_id, "agent": agent.subject,
                                            "queue": after.queue, "claim": record.seq})  # fmt: skip
        return after

    async def heartbeat(self, agent: Principal, appeal_id: str) -> CaseState:
        require_agent(agent)
        now = self._clock()
        case = await self._visible_case(agent, appeal_id, now)
        after, _ = await self._ledger.change(
            appeal_id,
            lambda s: case_rules.heartbeat(s, agent.subject, now, self._lease),
            known=case,
        )
        return after

    async def release(self, agent: Principal, appeal_id: str, reason: str) -> CaseState:
        require_agent(agent)
        now = self._clock()
        case = await self._visible_case(agent, appeal_id, now)
        after, record = await self._ledger.change(
            appeal_id,
            lambda s: case_rules.release(s, agent.subject, reason.strip(), now),
            known=case,
        )
        if record is not None:
            log.info(
                "case released",
                extra={"appeal_id": appeal_id, "agent": agent.subject, "queue": after.queue},
            )
        return after

    async def decide(
        self,
        agent: Principal,
        appeal_id: str,
        *,
        outcome: int,
        rationale: str,
        policy_cited: str,
        facts: str = "",
    ) -> DecisionResult:
        require_agent(agent)
        now = self._clock()
        policy = self._policies.current
        profile = await self.agents.recent_profile(agent)
        legacy = not profile.registered and policy.agents.unregistered.facts_optional
        validate_decision(outcome, rationale, policy_cited, facts, facts_optional=legacy)
        case = await self._visible_case(agent, appeal_id, now)
        verdict = Verdict(
            agent.subject,
            outcome,
            rationale.strip(),
            policy_cited,
            facts.strip() or case_facts(case),
            now,
            by_assistant=agent.assistant,
        )
        disagreement = routing_policy.place(
            policy, policy.second_review.disagreement_queue, case.placement.attributes
        )
        after, record = await self._ledger.change(
            appeal_id,
            lambda s: case_rules.decide(s, verdict, disagreement=disagreement),
            known=case,
        )
        recorded = _recorded_verdict(after, verdict)
        status = _decision_status(after)
        applied: tuple[str, ...] = ()
        if record is not None and after.status == Status.DECIDED and outcome in RESTORING_OUTCOMES:
            # Only what gives people their content back spreads to copies: upholding a copy's
            # removal needs a look at that appellant's own statement.
            rules = self._policies.current.restores
            applied = await self.apply_to_copies(
                after, recorded, allowed=rules.apply_to_identical_content, decider="a person"
            )
        outcome_name = vocabulary.outcome_name(outcome)
        labels = {**metrics.case_labels(case), "outcome": outcome_name}
        metrics.decisions.add(1, {**labels, "status": status})
        if record is not None and after.status == Status.DECIDED:
            # The review that closes the case: its age is what the appellant waited.
            waited = (now - case.routing.received_at).total_seconds()
            metrics.time_to_decision.record(max(0.0, waited), labels)
        log.info(
            "appeal reviewed",
            extra={"appeal_id": appeal_id, "agent": agent.subject, "queue": case.queue,
                   "outcome": vocabulary.outcome_name(outcome), "status": status,
                   "applied_to": list(applied)},
        )  # fmt: skip
        return DecisionResult(after, recorded, status, applied)

    async def escalate(
        self,
        agent: Principal,
        appeal_id: str,
        *,
        target: Target,
        reason: str,
        question: str = "",
        body: str = "",
    ) -> CaseState:
        """Up to the senior or legal queue, or out to the Oversight Board or a certified
        out-of-court body (``body``) whose decision comes back through the Referrals API."""
        require_agent(agent)
        _validate_escalation(target, reason, question, body)
        now = self._clock()
        policy = self._policies.current
        case = await self._visible_case(agent, appeal_id, now)
        placement = None
        referred_to, respond_by = "", None
        if target == Target.OVERSIGHT_BOARD:
            board = policy.escalation.oversight_board
            platform = vocabulary.platform_name(case.routing.platform)
            if platform not in board.platforms:
                raise Conflict(f"the Oversight Board does not review {platform} decisions")
            referred_to, respond_by = OVERSIGHT_BOARD_BODY, now + board.respond_within
        elif target == Target.OUT_OF_COURT:
            bodies = policy.escalation.out_of_court
            if body not in bodies.bodies:
                certified = ", ".join(bodies.bodies) or "none"
                raise ValidationFailed(
                    [FieldViolation("body", f"must be a certified body of the policy: {certified}")]
                )
            referred_to, respond_by = out_of_court_body(body), now + bodies.respond_within
        else:
            queue_id = (
                policy.escalation.senior if target == Target.SENIOR else policy.escalation.legal
            )
            placement = routing_policy.place(policy, queue_id, case.placement.attributes)
        after, _ = await self._ledger.change(
            appeal_id,
            lambda s: case_rules.escalate(
                s, agent.subject, now, target=target, placement=placement, reason=reason.strip(),
                question=question.strip(), referred_to=referred_to, respond_by=respond_by,
            ),
            known=case,
        )  # fmt: skip
        metrics.escalations.add(1, {"tier": target.value})
        log.info(
            "case escalated",
            extra={"appeal_id": appeal_id, "agent": agent.subject, "target": target.value,
                   "queue": after.queue, "referred_to": referred_to},
        )  # fmt: skip
        return after

    async def request_information(
        self, agent: Principal, appeal_id: str, *, question: str
    ) -> CaseState:
        """Ask the appellant for more: the case waits off the desk, its SLA paused, until the
        answer comes through intake or the policy's window ends (then it is queued again)."""
        require_agent(agent)
        question = question.strip()
        if not question or len(question) > MAX_QUESTION_CHARS:
            raise ValidationFailed(
                [
                    FieldViolation(
                        "question", f"is required, at most {MAX_QUESTION_CHARS} characters"
                    )
                ]
            )
        now = self._clock()
        respond_by = now + self._policies.current.info_requests.respond_within
        case = await self._visible_case(agent, appeal_id, now)
        after, record = await self._ledger.change(
            appeal_id,
            lambda s: case_rules.request_info(
                s, agent.subject, now, question=question, respond_by=respond_by
            ),
            known=case,
        )
        if record is not None:
            metrics.info_requests.add(1, metrics.case_labels(after))
            log.info(
                "information requested",
                extra={"appeal_id": appeal_id, "agent": agent.subject, "queue": after.queue},
            )
        return after

    async def transfer(
        self, agent: Principal, appeal_id: str, *, to_queue: str, reason: str
    ) -> CaseState:
        require_agent(agent)
        if not reason.strip():
            raise ValidationFailed([FieldViolation("reason", "is required")])
        now = self._clock()
        case = await self._visible_case(agent, appeal_id, now)
        placement = routing_policy.resolve_queue(
            self._policies.current, to_queue, case.placement.attributes
        )
        if placement is None:
            raise ValidationFailed(
                [FieldViolation("to_queue", f"{to_queue!r} is no queue of the routing policy")]
            )
        after, record = await self._ledger.change(
            appeal_id,
            lambda s: case_rules.transfer(
                s, agent.subject, now, placement=placement, reason=reason.strip()
            ),
            known=case,
        )
        if record is not None:
            log.info(
                "case transferred",
                extra={"appeal_id": appeal_id, "agent": agent.subject, "from_queue": case.queue,
                       "queue": after.queue},
            )  # fmt: skip
        return after

    # --- helpers ----------------------------------------------------------------------------

    async def _visible_case(self, agent: Principal, appeal_id: str, now: datetime) -> CaseState:
        # The board's copy of an open case saves reading its view: a step checked against a
        # copy that is behind fails on its record's _id and is checked again on the case caught
        # up (the ledger), so only a copy that would refuse the agent is read afresh.
        case = self._board.get(appeal_id)
        if case is None or not _visible_to(agent, case, now):
            case = await self._ledger.state(appeal_id)
        # Agents outside the case's queue learn nothing about it, not even that it exists; the
        # agent holding a case keeps it when a timer moves it to another queue.
        if case is None or not _visible_to(agent, case, now):
            raise NotFound(f"no case {appeal_id} in your queues")
        return case

    async def _check_can_take(self, agent: Principal, case: CaseState, now: datetime) -> None:
        case_rules.ensure_independent(case, agent.subject)
        # As read lately (the stream that offered the case read it): a registration through
        # this instance is seen at once, through another within seconds.
        profile = await self.agents.recent_profile(agent)
        if not self._offers.can_take(profile, case, now):
            raise PermissionDenied(
                f"appeal {case.appeal_id} needs skills you have not registered: "
                + ", ".join(case.placement.requirements.describe())
            )
        if self._board.held(agent.subject, now) >= profile.capacity:
            raise Conflict(
                f"you hold {profile.capacity} case(s), your capacity: decide or release one first"
            )

    async def apply_to_copies(
        self, source: CaseState, verdict: Verdict, *, allowed: bool, decider: str
    ) -> tuple[str, ...]:
        """The same decision for other open appeals about identical content, if the policy
        ``allowed`` it: one reviewed decision answers every copy. ``decider`` says who made it,
        in the copies' facts."""
        rules = self._policies.current.restores
        content_hash = source.routing.content_hash
        if not allowed or not content_hash:
            return ()
        submission = source.routing.submission
        applied_verdict = replace(
            verdict,
            facts=f"{verdict.facts}\nThe content is identical to the content of appeal "
            f"{source.appeal_id}, which was reviewed and decided by {decider}.",
        )
        applied = []
        for copy_id in self._board.copies(
            content_hash, submission.platform, excluding=source.appeal_id
        ):
            copy = await self._ledger.state(copy_id)
            same_policy = (
                copy is not None
                and copy.routing.submission.decision.policy == submission.decision.policy
            )
            if copy is None or (rules.same_policy_required and not same_policy):
                continue
            _, record = await self._ledger.change(
                copy_id,
                lambda s: case_rules.apply_copy(s, source.appeal_id, applied_verdict),
                known=copy,
            )
            if record is not None:
                applied.append(copy_id)
        return tuple(applied)


def _visible_to(agent: Principal, case: CaseState, now: datetime) -> bool:
    return agent.works_queue(case.queue) or case.held_by(agent.subject, now)


def case_facts(case: CaseState) -> str:
    """The facts of the case as submitted, recorded when an older desk client sends none.

    Never the appellant's statement: these facts go out in the decided event, into the statement
    of reasons and the public transparency database.
    """
    submission = case.routing.submission
    decision = submission.decision
    kind = vocabulary.subject_kind_name(submission.subject.kind)
    how = "automatically" if decision.automated else "by a person"
    return (
        f"The {kind} {submission.subject.id} on {vocabulary.platform_name(submission.platform)} "
        f"was {decision.action or 'actioned'} {how} under the {decision.policy} policy."
    )


def _recorded_verdict(case: CaseState, asked: Verdict) -> Verdict:
    if case.decision is not None and case.decision.agent_id == asked.agent_id:
        return case.decision
    mine = [r for r in case.reviews if r.agent_id == asked.agent_id]
    return mine[-1] if mine else asked


def _decision_status(case: CaseState) -> str:
    if case.status == Status.DECIDED:
        return DecisionStatus.DECIDED
    if case.round == Round.SENIOR_ADJUDICATION:
        return DecisionStatus.ESCALATED_FOR_DISAGREEMENT
    return DecisionStatus.SECOND_REVIEW_PENDING


def validate_decision(
    outcome: int, rationale: str, policy_cited: str, facts: str, *, facts_optional: bool
) -> None:
    violations = []
    if outcome not in DECIDABLE_OUTCOMES:
        violations.append(
            FieldViolation(
                "outcome",
                "must be OUTCOME_UPHELD, OUTCOME_OVERTURNED or OUTCOME_PARTIALLY_OVERTURNED",
            )
        )
    for name, text, limit in (
        ("rationale", rationale, MAX_RATIONALE_CHARS),
        ("facts", facts, MAX_FACTS_CHARS),
    ):
        if not text.strip() and not (name == "facts" and facts_optional):
            violations.append(FieldViolation(name, "is required: the person is owed reasons"))
        elif len(text) > limit:
            violations.append(FieldViolation(name, f"must be at most {limit} characters"))
    if not _POLICY.match(policy_cited):
        violations.append(FieldViolation("policy_cited", "is required, in snake_case"))
    if violations:
        raise ValidationFailed(violations)


def _validate_escalation(target: Target, reason: str, question: str, body: str) -> None:
    violations = []
    if target not in AGENT_ESCALATIONS:
        violations.append(FieldViolation("target", ESCALATION_TARGETS_TEXT))
    if not reason.strip():
        violations.append(FieldViolation("reason", "is required"))
    if target in REFERRAL_TARGETS and not question.strip():
        violations.append(FieldViolation("question", "is required for a referral"))
    if target == Target.OUT_OF_COURT and not body:
        violations.append(FieldViolation("body", "is required for an out-of-court referral"))
    if target != Target.OUT_OF_COURT and body:
        violations.append(FieldViolation("body", "names an out-of-court body; only for those"))
    if violations:
        raise ValidationFailed(violations)
