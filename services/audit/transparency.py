"""Statements of reasons in the EU DSA Transparency Database's fields (Art. 24(5)). Pure.

One statement per decided appeal, built only from two logged events: ``submitted`` (what was
decided originally, on what, where, in which language) and ``decided`` (the human review's outcome
and rationale). Field names and enumeration values are those of the Transparency Database API
(https://transparency.dsa.ec.europa.eu/page/api-documentation); its bulk endpoint takes at most
100 statements per call, hence :func:`batches`.

What the contracts do not carry is derived, and the README says how: the content's own date (we
use the original decision's date), the category (from the policy area), the ground (terms of
service unless the policy names a law).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appeals.v1 import appeal_pb2, events_pb2
from appeals_runtime import vocabulary
from services.audit import legacy

MAX_BATCH = 100

# The EEA: the 27 EU member states, Iceland, Liechtenstein and Norway (ISO 3166-1 alpha-2).
EEA = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip

# A policy naming a law rather than the terms of service, e.g. "law:DE-StGB-130".
LEGAL_PREFIX = "law:"

CATEGORIES = {
    "hate_speech": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
    "harassment": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
    "bullying": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
    "spam": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
    "fake_account": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
    "fraud": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
    "scam": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
    "nudity": "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT",
    "adult_content": "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT",
    "child_safety": "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
    "violence": "STATEMENT_CATEGORY_VIOLENCE",
    "graphic_violence": "STATEMENT_CATEGORY_VIOLENCE",
    "terrorism": "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
    "dangerous_organizations": "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
    "self_harm": "STATEMENT_CATEGORY_SELF_HARM",
    "misinformation": "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
    "intellectual_property": "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
    "privacy": "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
    "regulated_goods": "STATEMENT_CATEGORY_UNSAFE_AND_ILLEGAL_PRODUCTS",
    "animal_welfare": "STATEMENT_CATEGORY_ANIMAL_WELFARE",
}
OTHER_CATEGORY = "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE"

CONTENT_TYPES: dict[int, list[str]] = {
    appeal_pb2.SUBJECT_KIND_POST: ["CONTENT_TYPE_TEXT"],
    appeal_pb2.SUBJECT_KIND_COMMENT: ["CONTENT_TYPE_TEXT"],
    appeal_pb2.SUBJECT_KIND_MESSAGE: ["CONTENT_TYPE_TEXT"],
    appeal_pb2.SUBJECT_KIND_REEL: ["CONTENT_TYPE_VIDEO"],
    appeal_pb2.SUBJECT_KIND_STORY: ["CONTENT_TYPE_IMAGE", "CONTENT_TYPE_VIDEO"],
}
# Decisions on these act on the person's account or presence rather than on one piece of content.
ACCOUNT_LEVEL: frozenset[int] = frozenset(
    {
        appeal_pb2.SUBJECT_KIND_ACCOUNT,
        appeal_pb2.SUBJECT_KIND_PAGE,
        appeal_pb2.SUBJECT_KIND_GROUP,
        appeal_pb2.SUBJECT_KIND_AVATAR,
    }
)

VISIBILITY_ACTIONS = {
    "removed": "DECISION_VISIBILITY_CONTENT_REMOVED",
    "deleted": "DECISION_VISIBILITY_CONTENT_REMOVED",
    "disabled": "DECISION_VISIBILITY_CONTENT_DISABLED",
    "demoted": "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "reduced": "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "age_restricted": "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
    "restricted": "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED",
    "labelled": "DECISION_VISIBILITY_CONTENT_LABELLED",
    "labeled": "DECISION_VISIBILITY_CONTENT_LABELLED",
}
ACCOUNT_ACTIONS = {
    "disabled": ("decision_account", "DECISION_ACCOUNT_SUSPENDED"),
    "suspended": ("decision_account", "DECISION_ACCOUNT_SUSPENDED"),
    "banned": ("decision_account", "DECISION_ACCOUNT_TERMINATED"),
    "terminated": ("decision_account", "DECISION_ACCOUNT_TERMINATED"),
    "deleted": ("decision_account", "DECISION_ACCOUNT_TERMINATED"),
    "restricted": ("decision_provision", "DECISION_PROVISION_PARTIAL_SUSPENSION"),
}
MONETARY_ACTIONS = {
    "demonetized": "DECISION_MONETARY_SUSPENSION",
    "demonetised": "DECISION_MONETARY_SUSPENSION",
}
# The restriction each field describes, and the field that says when it ended.
END_DATES = {
    "decision_visibility": "end_date_visibility_restriction",
    "decision_monetary": "end_date_monetary_restriction",
    "decision_provision": "end_date_service_restriction",
    "decision_account": "end_date_account_restriction",
}
OUTCOME_WORDS = {
    appeal_pb2.OUTCOME_UPHELD: "upheld",
    appeal_pb2.OUTCOME_OVERTURNED: "reversed",
    appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED: "partly reversed",
}


@dataclass(frozen=True)
class DecidedAppeal:
    """The two logged events a statement of reasons is built from."""

    appeal_id: str
    submitted: events_pb2.AppealSubmitted
    submitted_at: datetime
    decided: events_pb2.AppealDecided
    decided_at: datetime

    @property
    def facts(self) -> appeal_pb2.SubmissionFacts:
        return legacy.facts_of(self.submitted)

    @property
    def platform(self) -> str:
        return vocabulary.platform_name(self.facts.platform)


def _date(moment: datetime) -> str:
    return moment.date().isoformat()


def _restrictions(facts: appeal_pb2.SubmissionFacts) -> dict[str, Any]:
    action = facts.decision.action.strip().lower()
    kind = facts.subject.kind
    fields: dict[str, Any] = {
        "decision_visibility": [],
        "decision_monetary": None,
        "decision_provision": None,
        "decision_account": None,
    }
    if action in MONETARY_ACTIONS:
        fields["decision_monetary"] = MONETARY_ACTIONS[action]
    elif kind in ACCOUNT_LEVEL and action in ACCOUNT_ACTIONS:
        name, value = ACCOUNT_ACTIONS[action]
        fields[name] = value
    elif action in VISIBILITY_ACTIONS:
        fields["decision_visibility"] = [VISIBILITY_ACTIONS[action]]
    else:
        fields["decision_visibility"] = ["DECISION_VISIBILITY_OTHER"]
        fields["decision_visibility_other"] = action or "unspecified"
    return fields


def _ground(appeal: DecidedAppeal) -> dict[str, Any]:
    policy = appeal.facts.decision.policy
    cited = appeal.decided.policy_cited or policy
    explanation = (
        appeal.decided.rationale or f"The content was found to breach the {policy} policy."
    )
    if policy.startswith(LEGAL_PREFIX) or cited.startswith(LEGAL_PREFIX):
        return {
            "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT",
            "illegal_content_legal_ground": cited.removeprefix(LEGAL_PREFIX),
            "illegal_content_explanation": explanation,
        }
    return {
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "incompatible_content_ground": cited,
        "incompatible_content_explanation": explanation,
    }


def _content_type(kind: int) -> dict[str, Any]:
    if kind in CONTENT_TYPES:
        return {"content_type": list(CONTENT_TYPES[kind])}
    return {
        "content_type": ["CONTENT_TYPE_OTHER"],
        "content_type_other": vocabulary.subject_kind_name(kind),
    }


def _territorial_scope(appeal: DecidedAppeal, ground: str) -> list[str]:
    # Terms of service apply everywhere; a law only where it is in force.
    country = appeal.facts.country.upper()
    if ground == "DECISION_GROUND_ILLEGAL_CONTENT" and country in EEA:
        return [country]
    return list(EEA)


def _facts(appeal: DecidedAppeal) -> str:
    """What the reviewer's own account of the facts is replaced by when they gave none."""
    original = appeal.facts.decision
    kind = vocabulary.subject_kind_name(appeal.facts.subject.kind)
    detected = ", detected by automated means" if original.automated else ""
    verdict = OUTCOME_WORDS.get(appeal.decided.outcome, "decided on")
    reviewer = "an automated assistant" if appeal.decided.by_assistant else "a person"
    return (
        f"The {kind} was {original.action or 'restricted'} under the {original.policy} policy"
        f"{detected}. On appeal, {reviewer} reviewed the decision and {verdict} it on "
        f"{_date(appeal.decided_at)}."
    )


def statement_of_reasons(appeal: DecidedAppeal) -> dict[str, Any]:
    facts = appeal.facts
    original = facts.decision
    policy_area = original.policy.removeprefix(LEGAL_PREFIX)
    outcome = appeal.decided.outcome
    restrictions = _restrictions(facts)
    ground = _ground(appeal)
    statement: dict[str, Any] = {
        **restrictions,
        **ground,
        "category": CATEGORIES.get(policy_area, OTHER_CATEGORY),
        **_content_type(facts.subject.kind),
        "automated_detection": "Yes" if original.automated else "No",
        # The appeal's decision is what is reported: by an automated assistant it is fully
        # automated, whatever came before; by a person after an automated first decision,
        # partially; by people throughout, not automated.
        "automated_decision": (
            "AUTOMATED_DECISION_FULLY"
            if appeal.decided.by_assistant
            else "AUTOMATED_DECISION_PARTIALLY"
            if original.automated
            else "AUTOMATED_DECISION_NOT_AUTOMATED"
        ),
        "source_type": (
            "SOURCE_ARTICLE_16"
            if facts.appellant_role == appeal_pb2.APPELLANT_ROLE_REPORTER
            else "SOURCE_VOLUNTARY"
        ),
        "content_date": _date(original.decided_at.ToDatetime()),
        "application_date": _date(original.decided_at.ToDatetime()),
        "puid": appeal.appeal_id,
        "territorial_scope": _territorial_scope(appeal, ground["decision_ground"]),
        "content_language": facts.locale.split("-")[0].upper() or None,
        "decision_facts": appeal.decided.facts or _facts(appeal),
    }
    if outcome == appeal_pb2.OUTCOME_OVERTURNED:
        # The whole restriction was lifted the day the appeal was decided.
        for field, end_field in END_DATES.items():
            if restrictions[field]:
                statement[end_field] = _date(appeal.decided_at)
    return statement


def batches(appeals: Iterable[DecidedAppeal]) -> Iterator[dict[str, Any]]:
    """``{"platform", "statements"}`` per platform, at most :data:`MAX_BATCH` statements each:
    each platform submits to the database under its own account, 100 statements per call."""
    by_platform: dict[str, list[dict[str, Any]]] = {}
    for appeal in sorted(appeals, key=lambda a: (a.platform, a.decided_at, a.appeal_id)):
        by_platform.setdefault(appeal.platform, []).append(statement_of_reasons(appeal))
    for platform, statements in by_platform.items():
        for start in range(0, len(statements), MAX_BATCH):
            yield {"platform": platform, "statements": statements[start : start + MAX_BATCH]}
