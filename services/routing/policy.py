"""Which queue an appeal goes to, how urgent it is, when it is due and who may review it.

Pure functions of a :class:`RoutingPolicy` (the YAML file, see ``policy_schema``) and an appeal's
facts: no I/O, no clock. Every number comes with the reasons that made it, because reviewers,
ops and appellants ask why.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from appeals import vocabulary
from appeals.v1 import appeal_pb2
from services.routing.policy_schema import (
    ANY_JURISDICTION,
    MATCHED_SKILLS,
    Conditions,
    QueueSpec,
    RoutingPolicy,
    Rule,
)

DEFAULT_RULE = "default"
NO_JURISDICTION = "global"
ANY = "*"


@dataclass(frozen=True)
class AppealFacts:
    """What routing knows about an appeal when it arrives."""

    # The submission as it leaves intake: its facts, no personal data.
    submission: appeal_pb2.SubmissionFacts
    received_at: datetime
    ban_evasion_suspected: bool = False
    # The same original decision was appealed before.
    repeat_appeal: bool = False


@dataclass(frozen=True)
class Requirements:
    """What an agent must have to be offered a case."""

    skills: Mapping[str, str] = field(default_factory=dict)  # e.g. {"language": "de"}
    min_seniority: str | None = None
    # Skills that never relax ("seniority" included when the level may not drop).
    mandatory: frozenset[str] = frozenset()

    def describe(self) -> list[str]:
        parts = [
            f"{skill}={value}{' (mandatory)' if skill in self.mandatory else ''}"
            for skill, value in sorted(self.skills.items())
        ]
        if self.min_seniority:
            mandatory = " (mandatory)" if "seniority" in self.mandatory else ""
            parts.append(f"seniority>={self.min_seniority}{mandatory}")
        return parts


@dataclass(frozen=True)
class Placement:
    """A queue, with the appeal's values that named it and the skills it requires."""

    queue_id: str
    queue: str
    attributes: Mapping[str, str]
    requirements: Requirements


# Distinct placements kept for sharing (a policy yields a few hundred at most; beyond this the
# table starts over rather than grow with whatever a store holds).
SHARED_PLACEMENTS = 4096
_shared: dict[tuple[object, ...], Placement] = {}


def shared(placement: Placement) -> Placement:
    """The one instance of an equal placement: every open case holds one, and most cases share a
    handful, so the board keeps a reference instead of a copy of its dicts (about 0.8 KB a case).
    Placements are never changed after they are made."""
    requirements = placement.requirements
    key = (
        placement.queue_id,
        placement.queue,
        tuple(sorted(placement.attributes.items())),
        tuple(sorted(requirements.skills.items())),
        requirements.min_seniority,
        requirements.mandatory,
    )
    found = _shared.get(key)
    if found is not None:
        return found
    if len(_shared) >= SHARED_PLACEMENTS:
        _shared.clear()
    _shared[key] = placement
    return placement


@dataclass(frozen=True)
class SlaPlan:
    due_at: datetime
    warn_at: datetime
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RoutingDecision:
    rule: str
    placement: Placement
    priority: int
    reasons: tuple[str, ...]
    sla: SlaPlan
    second_review: bool
    second_review_reason: str
    severity: str

    @property
    def queue(self) -> str:
        return self.placement.queue

    @property
    def sla_due_at(self) -> datetime:
        return self.sla.due_at


@dataclass(frozen=True)
class AgentSkills:
    """What an agent can review; ``*`` in a set (or as seniority) means anything."""

    languages: frozenset[str] = frozenset()
    platforms: frozenset[str] = frozenset()
    policy_areas: frozenset[str] = frozenset()
    seniority: str | None = None

    @classmethod
    def everything(cls) -> AgentSkills:
        any_ = frozenset({ANY})
        return cls(any_, any_, any_, ANY)

    def has(self, skill: str, value: str) -> bool:
        held = {
            "language": self.languages,
            "platform": self.platforms,
            "policy_area": self.policy_areas,
        }[skill]
        return ANY in held or value in held


# --- the appeal's values --------------------------------------------------------------------


def review_language(policy: RoutingPolicy, locale: str) -> str:
    language = locale.split("-", 1)[0].lower()
    return language if language in policy.languages.reviewed else policy.languages.fallback


def jurisdiction_of(policy: RoutingPolicy, country: str) -> str:
    """The first group holding the country, else the country itself."""
    country = country.upper()
    for name, members in policy.jurisdictions.items():
        if country in members:
            return name
    return country or NO_JURISDICTION


def attributes(policy: RoutingPolicy, submission: appeal_pb2.SubmissionFacts) -> dict[str, str]:
    return {
        "platform": vocabulary.platform_name(submission.platform),
        "policy_area": policy.policy_areas.get(
            submission.decision.policy, policy.default_policy_area
        ),
        "language": review_language(policy, submission.locale),
        "country": submission.country.upper(),
        "jurisdiction": jurisdiction_of(policy, submission.country),
    }


def severity(policy: RoutingPolicy, action: str) -> tuple[str, int]:
    for name, spec in policy.priority.severity.items():
        if action in spec.actions:
            return name, spec.points
    return "other", 0


# --- priority -------------------------------------------------------------------------------


def priority(
    policy: RoutingPolicy, facts: AppealFacts, values: Mapping[str, str]
) -> tuple[int, tuple[str, ...]]:
    """0..maximum, higher first; with the reasons that made it."""
    rules = policy.priority
    submission = facts.submission
    signals = submission.signals
    points: list[tuple[int, str]] = [(rules.base, "base")]
    level, level_points = severity(policy, submission.decision.action)
    if level_points:
        points.append((level_points, f"severity {level} ({submission.decision.action})"))
    kind = vocabulary.subject_kind_name(submission.subject.kind)
    if kind in rules.wide_reach_subjects.kinds:
        points.append((rules.wide_reach_subjects.points, f"{kind}: wide reach"))
    for step in sorted(rules.account_reach, key=lambda s: s.at_least, reverse=True):
        if signals.account_reach >= step.at_least:
            points.append((step.points, f"account reach {signals.account_reach:,}"))
            break
    if signals.vulnerable_user:
        points.append((rules.vulnerable_user, "vulnerable user"))
    if values["policy_area"] in rules.vulnerable_policy_areas.areas:
        points.append(
            (rules.vulnerable_policy_areas.points, f"{values['policy_area']}: vulnerable people")
        )
    deadline = legal_deadline(submission)
    if deadline is not None and deadline - facts.received_at <= rules.legal_deadline.within:
        points.append((rules.legal_deadline.points, f"legal deadline {deadline.isoformat()}"))
    if facts.repeat_appeal:
        points.append((rules.repeat_appeal, "repeat appeal of the same decision"))
    if facts.ban_evasion_suspected:
        points.append((rules.ban_evasion_suspected, "ban evasion suspected"))
    if submission.decision.automated:
        points.append((rules.automated_decision, "original decision was automated"))
    points = [(p, why) for p, why in points if p]
    score = max(0, min(sum(p for p, _ in points), rules.maximum))
    reasons = tuple(f"{p:+d} {why}" for p, why in points)
    if score == rules.maximum and sum(p for p, _ in points) > rules.maximum:
        reasons += (f"capped at {rules.maximum}",)
    return score, reasons


def legal_deadline(submission: appeal_pb2.SubmissionFacts) -> datetime | None:
    if not submission.signals.HasField("legal_deadline"):
        return None
    return submission.signals.legal_deadline.ToDatetime(tzinfo=UTC)


# --- SLA ------------------------------------------------------------------------------------


def sla_plan(
    policy: RoutingPolicy, facts: AppealFacts, values: Mapping[str, str], score: int
) -> SlaPlan:
    country = values["country"]
    target = next(
        t
        for t in policy.sla.targets
        if t.jurisdiction in (ANY_JURISDICTION, country)
        or country in policy.jurisdictions.get(t.jurisdiction, ())
    )
    band = next(b for b in target.bands if score >= b.min_priority)
    due = facts.received_at + band.within
    where = "elsewhere" if target.jurisdiction == ANY_JURISDICTION else target.jurisdiction
    reasons = [f"{describe_span(band.within)} for priority >= {band.min_priority} in {where}"]
    deadline = legal_deadline(facts.submission)
    if deadline is not None:
        capped = max(deadline - policy.sla.legal_deadline_margin, facts.received_at)
        if capped < due:
            due = capped
            reasons.append(f"capped by the legal deadline {deadline.isoformat()}")
    warn = facts.received_at + (due - facts.received_at) * policy.sla.warn_at_fraction
    return SlaPlan(due_at=due, warn_at=warn, reasons=tuple(reasons))


def describe_span(span: timedelta) -> str:
    """``"30m"``, ``"12h"``, ``"7d"``: how the policy file spells durations."""
    seconds = span.total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:g}m"
    hours = seconds / 3600
    return f"{hours / 24:g}d" if hours >= 48 and hours % 24 == 0 else f"{hours:g}h"


# --- rules and queues -----------------------------------------------------------------------


def conditions_hold(
    when: Conditions, facts: AppealFacts, values: Mapping[str, str], score: int, level: str
) -> bool:
    submission = facts.submission

    def within(allowed: list[str] | None, value: str, *, fold: bool = False) -> bool:
        if allowed is None:
            return True
        return value.upper() in {a.upper() for a in allowed} if fold else value in allowed

    checks = [
        within(when.platforms, values["platform"]),
        within(when.policies, submission.decision.policy),
        within(when.policy_areas, values["policy_area"]),
        within(when.languages, values["language"]),
        within(when.countries, values["country"], fold=True),
        within(when.jurisdictions, values["jurisdiction"], fold=True),
        within(when.severities, level),
        within(when.subject_kinds, vocabulary.subject_kind_name(submission.subject.kind)),
        when.min_account_reach is None
        or submission.signals.account_reach >= when.min_account_reach,
        when.vulnerable_user in (None, submission.signals.vulnerable_user),
        when.ban_evasion_suspected in (None, facts.ban_evasion_suspected),
        when.repeat_appeal in (None, facts.repeat_appeal),
        when.automated in (None, submission.decision.automated),
        when.legal_deadline in (None, legal_deadline(submission) is not None),
        when.min_priority is None or score >= when.min_priority,
    ]
    return all(checks)


def place(policy: RoutingPolicy, queue_id: str, values: Mapping[str, str]) -> Placement:
    spec = policy.queues[queue_id]
    mandatory = spec.mandatory if spec.mandatory is not None else policy.mandatory_skills
    requirements = Requirements(
        skills={skill: values[skill] for skill in spec.requires if skill in MATCHED_SKILLS},
        min_seniority=spec.min_seniority,
        mandatory=frozenset(mandatory),
    )
    name = spec.name.format(**{key: values.get(key, "") for key in spec.placeholders()})
    return shared(Placement(queue_id, name, dict(values), requirements))


def resolve_queue(policy: RoutingPolicy, name: str, values: Mapping[str, str]) -> Placement | None:
    """The placement a queue name stands for (first template that matches), taking the parts the
    name does not spell from ``values``; None when the policy defines no such queue."""
    for queue_id, spec in policy.queues.items():
        match = _template_pattern(spec).fullmatch(name)
        if match is None:
            continue
        parsed = {k: v for k, v in match.groupdict().items()}
        if all(_valid_value(policy, k, v) for k, v in parsed.items()):
            return place(policy, queue_id, {**values, **parsed})
    return None


def _template_pattern(spec: QueueSpec) -> re.Pattern[str]:
    pattern = ""
    for literal, placeholder, _, _ in string.Formatter().parse(spec.name):
        pattern += re.escape(literal)
        if placeholder:
            pattern += f"(?P<{placeholder}>[A-Za-z0-9_-]+)"
    return re.compile(pattern)


def _valid_value(policy: RoutingPolicy, key: str, value: str) -> bool:
    if key == "platform":
        return value in vocabulary.PLATFORMS
    if key == "language":
        return value in policy.languages.reviewed
    if key == "policy_area":
        return value in {*policy.policy_areas.values(), policy.default_policy_area}
    if key == "jurisdiction":
        return value in policy.jurisdictions or value == NO_JURISDICTION or len(value) == 2
    return len(value) == 2  # country


def route(policy: RoutingPolicy, facts: AppealFacts) -> RoutingDecision:
    values = attributes(policy, facts.submission)
    score, reasons = priority(policy, facts, values)
    level, _ = severity(policy, facts.submission.decision.action)
    rule: Rule | None = next(
        (r for r in policy.rules if conditions_hold(r.when, facts, values, score, level)), None
    )
    queue_id = rule.queue if rule else policy.default_queue
    second, why = _second_review(policy, facts, rule)
    return RoutingDecision(
        rule=rule.name if rule else DEFAULT_RULE,
        placement=place(policy, queue_id, values),
        priority=score,
        reasons=reasons,
        sla=sla_plan(policy, facts, values, score),
        second_review=second,
        second_review_reason=why,
        severity=level,
    )


def _second_review(
    policy: RoutingPolicy, facts: AppealFacts, rule: Rule | None
) -> tuple[bool, str]:
    if rule is not None and rule.second_review:
        return True, f"rule {rule.name} requires it"
    threshold = policy.second_review.min_account_reach
    reach = facts.submission.signals.account_reach
    if threshold is not None and reach >= threshold:
        return True, f"account reach {reach:,} >= {threshold:,}"
    return False, ""


# --- who may take a case --------------------------------------------------------------------


def relaxed_skills(
    policy: RoutingPolicy, requirements: Requirements, waited: timedelta
) -> set[str]:
    relaxed: set[str] = {
        skill for step in policy.relaxation if waited >= step.after for skill in step.relax
    }
    return relaxed - requirements.mandatory


def effective_requirements(
    policy: RoutingPolicy, requirements: Requirements, waited: timedelta
) -> Requirements:
    """What is still required of an agent after the case waited ``waited`` in its queue."""
    relaxed = relaxed_skills(policy, requirements, waited)
    return Requirements(
        skills={k: v for k, v in requirements.skills.items() if k not in relaxed},
        min_seniority=None if "seniority" in relaxed else requirements.min_seniority,
        mandatory=requirements.mandatory,
    )


def relaxation_schedule(
    policy: RoutingPolicy, requirements: Requirements
) -> list[tuple[timedelta, list[str]]]:
    """When which of this case's requirements stop applying (for explanations)."""
    held = set(requirements.skills) | ({"seniority"} if requirements.min_seniority else set())
    schedule = []
    for step in policy.relaxation:
        dropped: list[str] = sorted((set(step.relax) & held) - requirements.mandatory)
        if dropped:
            schedule.append((step.after, dropped))
    return schedule


def seniority_rank(policy: RoutingPolicy, level: str | None) -> int:
    if level == ANY:
        return len(policy.seniority_levels)
    return policy.seniority_levels.index(level) if level in policy.seniority_levels else -1


def qualifies(policy: RoutingPolicy, skills: AgentSkills, requirements: Requirements) -> bool:
    if not all(skills.has(skill, value) for skill, value in requirements.skills.items()):
        return False
    if requirements.min_seniority is None:
        return True
    return seniority_rank(policy, skills.seniority) >= seniority_rank(
        policy, requirements.min_seniority
    )
