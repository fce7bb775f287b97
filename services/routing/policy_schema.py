"""The shape of the routing policy file, validated when it is loaded. Pure: no I/O.

Every model forbids unknown keys, so a misspelt key is an error naming it rather than a rule that
silently never applies. Cross references (a rule's queue, a relaxation step's skills, escalation
queues) are checked once the whole file is read; their errors name the key path too.
"""

from __future__ import annotations

import re
import string
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from appeals import platforms

# Skills an agent has and a queue may require; "seniority" is compared by level.
Skill = Literal["platform", "language", "policy_area", "seniority"]
MATCHED_SKILLS: tuple[Skill, ...] = ("platform", "language", "policy_area")
# Placeholders a queue name template may use.
TEMPLATE_FIELDS = frozenset({"platform", "language", "policy_area", "country", "jurisdiction"})
ANY_JURISDICTION = "*"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: Any) -> Any:
    """``"90s"``, ``"30m"``, ``"24h"``, ``"7d"``, ``"1h30m"`` or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        return value  # let pydantic report the type error
    text = value.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ValueError(f"{value!r} is not a duration like '30m', '24h' or '7d'")
    return timedelta(seconds=sum(float(n) * _UNITS[unit] for n, unit in parts))


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Languages(_Strict):
    # Languages with reviewer teams; any other appeal is reviewed in the fallback language.
    reviewed: list[str] = Field(min_length=1)
    fallback: str


class QueueSpec(_Strict):
    # e.g. "{platform}.{policy_area}.{language}": one queue per combination of the values.
    name: str
    # What an agent must have to be offered the queue's cases (the case's values of these).
    requires: list[Skill] = Field(default_factory=list)
    min_seniority: str | None = None
    # Skills that never relax for this queue; default: the policy's mandatory_skills.
    mandatory: list[Skill] | None = None

    def placeholders(self) -> list[str]:
        return [field for _, field, _, _ in string.Formatter().parse(self.name) if field]


class Conditions(_Strict):
    """All given conditions must hold; an empty ``when`` matches every appeal."""

    platforms: list[str] | None = None
    policies: list[str] | None = None
    policy_areas: list[str] | None = None
    languages: list[str] | None = None
    countries: list[str] | None = None
    jurisdictions: list[str] | None = None
    severities: list[str] | None = None
    subject_kinds: list[str] | None = None
    min_account_reach: int | None = None
    vulnerable_user: bool | None = None
    ban_evasion_suspected: bool | None = None
    repeat_appeal: bool | None = None
    automated: bool | None = None
    legal_deadline: bool | None = None
    min_priority: int | None = None


class Rule(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: Conditions = Field(default_factory=Conditions)
    queue: str
    # A second, blind review is required before the decision is final.
    second_review: bool = False


class SeverityClass(_Strict):
    actions: list[str]
    points: int


class Points(_Strict):
    points: int


class KindsPoints(Points):
    kinds: list[str]


class AreasPoints(Points):
    areas: list[str]


class ReachStep(Points):
    at_least: int = Field(ge=0)


class DeadlinePoints(Points):
    # A legal deadline this close to the appeal's arrival adds the points.
    within: Duration


class Priority(_Strict):
    base: int = 10
    maximum: int = 100
    # Classes of the original action, checked in order; the first listing the action applies.
    severity: dict[str, SeverityClass]
    wide_reach_subjects: KindsPoints
    # The highest threshold the account's reach meets applies.
    account_reach: list[ReachStep] = Field(default_factory=list)
    vulnerable_user: int = 0
    vulnerable_policy_areas: AreasPoints
    legal_deadline: DeadlinePoints
    repeat_appeal: int = 0
    ban_evasion_suspected: int = 0
    automated_decision: int = 0


class SlaBand(_Strict):
    min_priority: int
    within: Duration


class SlaTarget(_Strict):
    # A country (ISO 3166-1 alpha-2), a group from `jurisdictions`, or "*" for everywhere else.
    jurisdiction: str
    bands: list[SlaBand] = Field(min_length=1)


class OnBreach(_Strict):
    # Queue id a breaching case moves to; null keeps it where it is.
    escalate_to: str | None = None
    priority_boost: int = 0


class Sla(_Strict):
    # Warn once this fraction of the time to the due time has passed.
    warn_at_fraction: float = Field(default=0.8, gt=0, lt=1)
    # A legal deadline, if sooner, caps the due time (less this margin).
    legal_deadline_margin: Duration = timedelta(0)
    targets: list[SlaTarget] = Field(min_length=1)
    on_breach: OnBreach = Field(default_factory=OnBreach)


class RelaxStep(_Strict):
    after: Duration
    relax: list[Skill] = Field(min_length=1)


class SecondReview(_Strict):
    # Appeals about accounts at least this large always get a second, blind review.
    min_account_reach: int | None = None
    disagreement_queue: str


# An external body's decision is due this long after the referral unless the policy says
# otherwise (the Board's and DSA Art. 21(4)'s 90 days).
DEFAULT_REFERRAL_WINDOW = timedelta(days=90)
_BODY_ID = r"^[a-z][a-z0-9_]*$"


class OversightBoard(_Strict):
    # Platforms whose decisions the Board may review: those declared so in
    # appeals/platforms.yaml unless the policy narrows or widens it.
    platforms: list[str] = Field(default_factory=lambda: sorted(platforms.OVERSIGHT_BOARD))
    # By when the Board's decision is due, from the referral (overdue referrals show on ops).
    respond_within: Duration = DEFAULT_REFERRAL_WINDOW
    # The Board's overturn also restores open appeals about identical content.
    apply_to_identical_content: bool = True


class OutOfCourt(_Strict):
    """Certified out-of-court dispute settlement bodies (DSA Art. 21) cases may be referred to;
    each decides through its own ``referral_body`` token, subject ``ods:<id>``."""

    bodies: list[Annotated[str, Field(pattern=_BODY_ID)]] = Field(default_factory=list)
    respond_within: Duration = DEFAULT_REFERRAL_WINDOW
    # A body's decision binds the platform for the dispute before it, not for other people's
    # appeals: copies are decided on their own unless the policy says otherwise.
    apply_to_identical_content: bool = False


class Escalation(_Strict):
    senior: str
    legal: str
    oversight_board: OversightBoard
    out_of_court: OutOfCourt = Field(default_factory=OutOfCourt)


class InfoRequests(_Strict):
    """Requests for information: how long the appellant has to answer, and what then."""

    respond_within: Duration = timedelta(days=14)
    # Without an answer in time the case returns to its queue and a reviewer decides on what the
    # file holds: a decision about a person's appeal needs a person (DSA Art. 20(6)), so the
    # silence decides nothing by itself. (The only choice today.)
    on_no_answer: Literal["return_to_queue"] = "return_to_queue"


class Restores(_Strict):
    # Apply an overturn to other open appeals about identical content (same content hash).
    apply_to_identical_content: bool = False
    # ... only when they were actioned under the same policy.
    same_policy_required: bool = True


class Unregistered(_Strict):
    """Agents that never called RegisterAgent (desk clients older than skills)."""

    # "all": they may take any case of their token's queues (the desk's original behaviour);
    # "none": they are offered nothing until they register.
    skills: Literal["all", "none"] = "none"
    capacity: int = Field(default=1, ge=1)
    # How many cases one of their streams may hold reserved at once.
    offer_window: int = Field(default=10, ge=1)
    # Their decisions may omit the facts; the case's own facts are recorded instead.
    facts_optional: bool = False


class Agents(_Strict):
    default_capacity: int = Field(default=3, ge=1)
    # How long an offer reserves a case for one agent before others may be offered it.
    offer_ttl: Duration = timedelta(seconds=30)
    unregistered: Unregistered = Field(default_factory=Unregistered)


class RoutingPolicy(_Strict):
    version: Literal[1]
    policy_areas: dict[str, str]
    default_policy_area: str
    languages: Languages
    jurisdictions: dict[str, list[str]] = Field(default_factory=dict)
    seniority_levels: list[str] = Field(min_length=1)
    mandatory_skills: list[Skill] = Field(default_factory=list)
    queues: dict[str, QueueSpec] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    default_queue: str
    relaxation: list[RelaxStep] = Field(default_factory=list)
    priority: Priority
    sla: Sla
    second_review: SecondReview
    escalation: Escalation
    restores: Restores = Field(default_factory=Restores)
    info_requests: InfoRequests = Field(default_factory=InfoRequests)
    agents: Agents = Field(default_factory=Agents)

    @model_validator(mode="after")
    def _references_resolve(self) -> RoutingPolicy:
        problems = list(self._reference_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _reference_problems(self) -> list[str]:
        known = sorted(self.queues)
        problems = []

        def queue_ref(path: str, queue_id: str | None) -> None:
            if queue_id is not None and queue_id not in self.queues:
                problems.append(f"{path}: unknown queue {queue_id!r} (queues: {known})")

        def seniority_ref(path: str, level: str | None) -> None:
            if level is not None and level not in self.seniority_levels:
                problems.append(f"{path}: unknown seniority {level!r} ({self.seniority_levels})")

        for queue_id, spec in self.queues.items():
            unknown = sorted(set(spec.placeholders()) - TEMPLATE_FIELDS)
            if unknown:
                problems.append(
                    f"queues.{queue_id}.name: unknown placeholders {unknown} "
                    f"(use {sorted(TEMPLATE_FIELDS)})"
                )
            seniority_ref(f"queues.{queue_id}.min_seniority", spec.min_seniority)
        for i, rule in enumerate(self.rules):
            queue_ref(f"rules[{i}].queue", rule.queue)
        names = [rule.name for rule in self.rules]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"rules: the name {name!r} is used twice")
        queue_ref("default_queue", self.default_queue)
        queue_ref("sla.on_breach.escalate_to", self.sla.on_breach.escalate_to)
        queue_ref("second_review.disagreement_queue", self.second_review.disagreement_queue)
        queue_ref("escalation.senior", self.escalation.senior)
        queue_ref("escalation.legal", self.escalation.legal)
        if self.languages.fallback not in self.languages.reviewed:
            problems.append("languages.fallback: must be one of languages.reviewed")
        for i, step in enumerate(self.relaxation):
            never = sorted(set(step.relax) & set(self.mandatory_skills))
            if never:
                problems.append(f"relaxation[{i}].relax: {never} are mandatory_skills")
        afters = [step.after for step in self.relaxation]
        if afters != sorted(afters):
            problems.append("relaxation: steps must be in order of `after`")
        if self.sla.targets[-1].jurisdiction != ANY_JURISDICTION:
            problems.append('sla.targets: the last target must be jurisdiction "*"')
        for i, target in enumerate(self.sla.targets):
            bands = [band.min_priority for band in target.bands]
            if bands != sorted(bands, reverse=True) or bands[-1] > 0:
                problems.append(
                    f"sla.targets[{i}].bands: order by min_priority, highest first, down to 0"
                )
        return problems
