"""Which queue an appeal goes to, how urgent it is, and when it is due. Pure functions.

A queue is ``<platform>.<policy area>.<language>``: reviewers are trained per product, per
policy area and per language, and an appeal must reach someone who reads the person's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from appeals.v1 import appeal_pb2
from appeals_runtime import vocabulary

# Policies of original decisions, grouped into the areas reviewer teams specialise in.
POLICY_AREAS: dict[str, str] = {
    "hate_speech": "hate_and_harassment",
    "harassment": "hate_and_harassment",
    "bullying": "hate_and_harassment",
    "violence": "violence_and_safety",
    "violent_content": "violence_and_safety",
    "dangerous_organizations": "violence_and_safety",
    "terrorism": "violence_and_safety",
    "nudity": "adult_content",
    "sexual_content": "adult_content",
    "child_safety": "child_safety",
    "self_harm": "self_harm",
    "suicide": "self_harm",
    "spam": "integrity",
    "impersonation": "integrity",
    "fake_account": "integrity",
    "ban_evasion": "integrity",
    "misinformation": "misinformation",
    "intellectual_property": "intellectual_property",
    "copyright": "intellectual_property",
}
DEFAULT_AREA = "general"

# Languages with reviewer teams; any other appeal is reviewed in English with translation.
REVIEW_LANGUAGES = frozenset({"en", "de", "fr", "es", "pt", "it", "hi", "ar", "id", "tr", "ja"})
FALLBACK_LANGUAGE = "en"

_ACCOUNT_LEVEL_ACTIONS = frozenset({"disabled", "banned", "suspended", "deactivated"})
_REMOVAL_ACTIONS = frozenset({"removed", "deleted", "taken_down"})
_HIGH_REACH_SUBJECTS = frozenset(
    {appeal_pb2.SUBJECT_KIND_ACCOUNT, appeal_pb2.SUBJECT_KIND_PAGE, appeal_pb2.SUBJECT_KIND_GROUP}
)
_VULNERABLE_AREAS = frozenset({"child_safety", "self_harm"})

# (minimum priority, time to decision)
SLA_TARGETS: tuple[tuple[int, timedelta], ...] = (
    (60, timedelta(hours=24)),
    (35, timedelta(hours=72)),
    (0, timedelta(days=7)),
)


@dataclass(frozen=True)
class RoutingDecision:
    queue: str
    priority: int
    sla_due_at: datetime
    policy_area: str
    language: str
    reasons: tuple[str, ...]


def review_language(locale: str) -> str:
    language = locale.split("-", 1)[0].lower()
    return language if language in REVIEW_LANGUAGES else FALLBACK_LANGUAGE


def priority(submission: appeal_pb2.AppealSubmission, area: str) -> tuple[int, tuple[str, ...]]:
    """0-100, higher first; with the reasons that made it, for people asking why."""
    score, reasons = 10, ["base 10"]
    action = submission.decision.action
    if action in _ACCOUNT_LEVEL_ACTIONS:
        score += 30
        reasons.append(f"+30 account-level action ({action})")
    elif action in _REMOVAL_ACTIONS:
        score += 15
        reasons.append(f"+15 removal ({action})")
    if submission.subject.kind in _HIGH_REACH_SUBJECTS:
        score += 20
        reasons.append("+20 account, page or group: wide reach")
    if area in _VULNERABLE_AREAS:
        score += 15
        reasons.append(f"+15 {area}: possibly vulnerable person")
    if submission.decision.automated:
        score += 10
        reasons.append("+10 original decision was automated")
    return min(score, 100), tuple(reasons)


def sla_for(score: int) -> timedelta:
    for minimum, target in SLA_TARGETS:
        if score >= minimum:
            return target
    return SLA_TARGETS[-1][1]


def route(submission: appeal_pb2.AppealSubmission, *, received_at: datetime) -> RoutingDecision:
    area = POLICY_AREAS.get(submission.decision.policy, DEFAULT_AREA)
    language = review_language(submission.locale)
    platform = vocabulary.platform_name(submission.platform)
    score, reasons = priority(submission, area)
    return RoutingDecision(
        queue=f"{platform}.{area}.{language}",
        priority=score,
        sla_due_at=received_at + sla_for(score),
        policy_area=area,
        language=language,
        reasons=reasons,
    )
