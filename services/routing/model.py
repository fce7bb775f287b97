"""Cases, their records, offers and agents, as routing keeps them.

A case is the fold of its records (:mod:`services.routing.case_rules`): routed, claimed,
released, decided, ... each appended once with the next sequence number. Records are the truth;
the ``case_views`` collection holds their fold, read by ``_id`` instead of folding every time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum

from appeals.v1 import appeal_pb2
from services.routing.policy import AgentSkills, Placement
from services.routing.policy_schema import DEFAULT_REFERRAL_WINDOW


class Status(StrEnum):
    # queued → in_review (claimed) → decided; a release or an expired lease queues it again;
    # a referral (Oversight Board, out-of-court body) leaves the desk ("referred") until the
    # body's decision comes back (decided).
    QUEUED = "queued"
    IN_REVIEW = "in_review"
    DECIDED = "decided"
    REFERRED = "referred"
    # A reviewer asked the appellant for more: off the desk, SLA clock paused, until the answer
    # comes or the policy's window ends (then queued again).
    AWAITING_INFO = "awaiting_info"


OPEN_STATUSES = (Status.QUEUED, Status.IN_REVIEW)


class Kind(StrEnum):
    ROUTED = "routed"
    CLAIMED = "claimed"
    HEARTBEAT = "heartbeat"
    RELEASED = "released"
    # A first review that is not final: the policy wants a second, blind one.
    REVIEWED = "reviewed"
    DECIDED = "decided"
    ESCALATED = "escalated"
    TRANSFERRED = "transferred"
    SLA_WARNED = "sla_warned"
    SLA_BREACHED = "sla_breached"
    # A request for information, its answer, or its window ending without one.
    INFO_REQUESTED = "info_requested"
    INFO_RECEIVED = "info_received"
    INFO_LAPSED = "info_lapsed"


class Round(IntEnum):
    FIRST = 1
    SECOND_BLIND = 2
    SENIOR_ADJUDICATION = 3


class Target(StrEnum):
    """Where an escalation sends a case (the AppealEscalated.target vocabulary)."""

    SENIOR = "senior"
    LEGAL = "legal"
    OVERSIGHT_BOARD = "oversight_board"
    # A certified out-of-court dispute settlement body (DSA Art. 21).
    OUT_OF_COURT = "out_of_court"
    SLA_BREACH = "sla_breach"
    REVIEW_DISAGREEMENT = "review_disagreement"


# Escalations that leave the desk for an external body whose decision comes back.
REFERRAL_TARGETS = (Target.OVERSIGHT_BOARD, Target.OUT_OF_COURT)
# The body ids of referrals: the Board's, and "ods:<id>" for a certified out-of-court body (the
# subject of the body's token).
OVERSIGHT_BOARD_BODY = "oversight_board"
OUT_OF_COURT_PREFIX = "ods:"


def out_of_court_body(body_id: str) -> str:
    return f"{OUT_OF_COURT_PREFIX}{body_id}"


@dataclass(frozen=True)
class Referral:
    """A case out with an external body: who decides, on what question, and by when."""

    body: str
    question: str
    referred_at: datetime
    respond_by: datetime

    def overdue(self, now: datetime) -> bool:
        return now >= self.respond_by


@dataclass(frozen=True)
class InfoRequest:
    """What the appellant was asked, by whom, and by when the answer is due."""

    agent_id: str
    question: str
    asked_at: datetime
    respond_by: datetime
    # The sequence number of the record that asked: names its event, which the answer cites.
    seq: int


def legacy_board_referral(referred_at: datetime, question: str = "") -> Referral:
    """A referral recorded before referrals came back: only the Board was referred to then."""
    return Referral(
        OVERSIGHT_BOARD_BODY, question, referred_at, referred_at + DEFAULT_REFERRAL_WINDOW
    )


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


@dataclass(frozen=True)
class Verdict:
    """One reviewer's answer: final in a decision, one of two in a blind review."""

    agent_id: str
    outcome: int
    rationale: str
    policy_cited: str
    facts: str
    at: datetime
    # Decided by an automated assistant (its token says so), not by a person.
    by_assistant: bool = False


@dataclass(frozen=True, init=False)
class Routing:
    """What routing decided when the appeal arrived; never changes afterwards."""

    # The submission's facts from the submitted event, serialized. The appellant's statement is
    # not among them: the desk fetches it from intake for the reviewer holding the case. Every
    # open case is in memory (the board), and a parsed message costs about 1.6 KB of it against
    # about 150 bytes for its bytes (RSS over 20,000 facts): half of what an open case cost.
    # ``submission`` parses them when asked; what the board and the desk's loops read of them
    # is kept beside them.
    facts: bytes
    platform: int
    content_hash: str
    # Who made the original decision (excluded from reviewing the appeal).
    original_decider: str
    received_at: datetime
    rule: str
    reasons: tuple[str, ...]
    sla_due_at: datetime
    sla_warn_at: datetime
    second_review: bool
    # The submitted event this case came from.
    causation_id: str
    ban_evasion_suspected: bool
    appellant_pseudonym: str
    # W3C traceparent of the appeal's trace: later steps (an agent's decision, a timer) publish
    # their events in it, so one trace follows the appeal (see appeals_runtime.tracing).
    trace_parent: str

    def __init__(
        self,
        submission: appeal_pb2.SubmissionFacts,
        received_at: datetime,
        rule: str,
        reasons: tuple[str, ...],
        sla_due_at: datetime,
        sla_warn_at: datetime,
        second_review: bool,
        causation_id: str = "",
        ban_evasion_suspected: bool = False,
        appellant_pseudonym: str = "",
        trace_parent: str = "",
    ) -> None:
        values = {
            "facts": submission.SerializeToString(deterministic=True),
            "platform": submission.platform,
            "content_hash": submission.subject.content_hash,
            "original_decider": sys.intern(submission.decision.decided_by),
            "received_at": received_at,
            "rule": sys.intern(rule),
            "reasons": reasons,
            "sla_due_at": sla_due_at,
            "sla_warn_at": sla_warn_at,
            "second_review": second_review,
            "causation_id": causation_id,
            "ban_evasion_suspected": ban_evasion_suspected,
            "appellant_pseudonym": appellant_pseudonym,
            "trace_parent": trace_parent,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @property
    def submission(self) -> appeal_pb2.SubmissionFacts:
        """The facts, parsed afresh: a copy, so changing it changes nothing here."""
        parsed = appeal_pb2.SubmissionFacts()
        parsed.ParseFromString(self.facts)
        return parsed


@dataclass(frozen=True)
class CaseRecord:
    """One step of a case. Which fields are set depends on the kind."""

    appeal_id: str
    seq: int
    kind: Kind
    at: datetime
    agent_id: str = ""
    reason: str = ""
    lease_expires_at: datetime | None = None
    verdict: Verdict | None = None
    # Where the case waits from now on (routed, escalated, transferred, breach escalations).
    placement: Placement | None = None
    priority: int | None = None
    routing: Routing | None = None
    from_queue: str = ""
    target: str = ""
    question: str = ""
    concurring: tuple[str, ...] = ()
    applied_from: str = ""
    # An escalation to an external body: which one, and by when its decision is due.
    referred_to: str = ""
    respond_by: datetime | None = None


@dataclass(frozen=True)
class Hold:
    """A claim: who holds the case and until when."""

    agent_id: str
    seq: int
    lease_expires_at: datetime

    def active(self, now: datetime) -> bool:
        return self.lease_expires_at > now


@dataclass(frozen=True)
class CaseState:
    appeal_id: str
    version: int
    routing: Routing
    placement: Placement
    # When the case entered its current queue: skill relaxation counts from here.
    waiting_since: datetime
    priority: int
    status: Status
    hold: Hold | None = None
    round: Round = Round.FIRST
    # Reviews that did not decide alone (a blind review's first look), oldest first.
    reviews: tuple[Verdict, ...] = ()
    # Who may not review this case: the original decider, earlier reviewers of a blind review.
    excluded: frozenset[str] = frozenset()
    decision: Verdict | None = None
    concurring: tuple[str, ...] = ()
    applied_from: str = ""
    sla_warned: bool = False
    sla_breached: bool = False
    # Set once the case was referred to an external body; kept after its decision came back.
    referral: Referral | None = None
    # The open request for information (status awaiting_info).
    info_request: InfoRequest | None = None
    # Time spent waiting for the appellant's answers: the SLA clock stops meanwhile.
    sla_paused: timedelta = timedelta(0)

    @property
    def sla_due_at(self) -> datetime:
        return self.routing.sla_due_at + self.sla_paused

    @property
    def sla_warn_at(self) -> datetime:
        return self.routing.sla_warn_at + self.sla_paused

    @property
    def queue(self) -> str:
        return self.placement.queue

    @property
    def final(self) -> bool:
        return self.status in (Status.DECIDED, Status.REFERRED)

    def held_by(self, agent_id: str, now: datetime) -> bool:
        return (
            self.status == Status.IN_REVIEW
            and self.hold is not None
            and self.hold.agent_id == agent_id
            and self.hold.active(now)
        )

    def claimed(self, now: datetime) -> bool:
        return self.status == Status.IN_REVIEW and self.hold is not None and self.hold.active(now)

    def lease_expired(self, now: datetime) -> bool:
        return self.status == Status.IN_REVIEW and (self.hold is None or not self.hold.active(now))

    def is_open(self, now: datetime) -> bool:
        """Offerable: waiting in its queue, or claimed by someone whose lease has run out."""
        return self.status == Status.QUEUED or self.lease_expired(now)


@dataclass(frozen=True)
class Offer:
    """A case reserved for one agent's stream until ``expires_at``."""

    appeal_id: str
    # 1 for the first offer of a case, +1 for each later one: unique per case.
    number: int
    agent_id: str
    stream_id: str
    offered_at: datetime
    expires_at: datetime
    withdrawn: bool = False

    def active(self, now: datetime) -> bool:
        return not self.withdrawn and self.expires_at > now


@dataclass(frozen=True)
class AgentProfile:
    agent_id: str
    skills: AgentSkills
    capacity: int
    # False for agents that never called RegisterAgent (served by the policy's defaults).
    registered: bool = True
    presence: Presence = Presence.OFFLINE
    presence_until: datetime | None = None

    def presence_at(self, now: datetime) -> Presence:
        """Online only while a stream keeps renewing it; an instance that dies lets it lapse."""
        if self.presence == Presence.AWAY:
            return Presence.AWAY
        if self.presence_until is not None and self.presence_until > now:
            return Presence.ONLINE
        return Presence.OFFLINE
