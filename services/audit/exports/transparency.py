"""Statements of reasons in the EU DSA Transparency Database's fields (Art. 24(5)). Pure.

One statement per decided appeal, built only from two logged events: ``submitted`` (what was
decided originally, on what, where, in which language) and ``decided`` (the human review's outcome
and rationale). Field names and enumeration values are those of the Transparency Database API
(https://transparency.dsa.ec.europa.eu/page/api-documentation); its bulk endpoint takes at most
100 statements per call, hence :func:`batches`.

What the contracts do not carry is derived, and the README says how: the content's own date (the
subject's ``content_date`` when the surface sent it, else the original decision's date), the
category (from the policy area), the ground (terms of service unless the policy names a law).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appeals import vocabulary
from appeals.v1 import appeal_pb2, events_pb2
from services.audit.exports import dsa_rules
from services.audit.privacy import legacy

MAX_BATCH = 100

# The EEA: the 27 EU member states, Iceland, Liechtenstein and Norway (ISO 3166-1 alpha-2).
EEA = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip

# A policy naming a law rather than the terms of service, e.g. "law:DE-StGB-130".
LEGAL_PREFIX = "law:"

# The Transparency Database's category for each policy area, and the keyword that narrows it
# (category_specification) where one fits; the values in force since 1 July 2025 (dsa_rules).
CATEGORIES: dict[str, tuple[str, str | None]] = {
    "hate_speech": ("STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH", "KEYWORD_HATE_SPEECH"),
    "harassment": ("STATEMENT_CATEGORY_CYBER_VIOLENCE", "KEYWORD_CYBER_HARASSMENT"),
    "bullying": ("STATEMENT_CATEGORY_CYBER_VIOLENCE", "KEYWORD_CYBER_BULLYING_INTIMIDATION"),
    "spam": ("STATEMENT_CATEGORY_SCAMS_AND_FRAUD", None),
    "fake_account": ("STATEMENT_CATEGORY_SCAMS_AND_FRAUD", "KEYWORD_INAUTHENTIC_ACCOUNTS"),
    "impersonation": (
        "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
        "KEYWORD_IMPERSONATION_ACCOUNT_HIJACKING",
    ),
    "fraud": ("STATEMENT_CATEGORY_SCAMS_AND_FRAUD", None),
    "scam": ("STATEMENT_CATEGORY_SCAMS_AND_FRAUD", None),
    "phishing": ("STATEMENT_CATEGORY_SCAMS_AND_FRAUD", "KEYWORD_PHISHING"),
    # Nudity and adult content breach the terms, not a law: "pornography or sexualised content"
    # was removed as a category on 1 July 2025.
    "nudity": ("STATEMENT_CATEGORY_OTHER_VIOLATION_TC", "KEYWORD_NUDITY"),
    "adult_content": ("STATEMENT_CATEGORY_OTHER_VIOLATION_TC", "KEYWORD_ADULT_SEXUAL_MATERIAL"),
    "sexual_content": ("STATEMENT_CATEGORY_OTHER_VIOLATION_TC", "KEYWORD_ADULT_SEXUAL_MATERIAL"),
    "child_safety": ("STATEMENT_CATEGORY_PROTECTION_OF_MINORS", None),
    "violence": ("STATEMENT_CATEGORY_VIOLENCE", None),
    "graphic_violence": ("STATEMENT_CATEGORY_VIOLENCE", None),
    "incitement": ("STATEMENT_CATEGORY_VIOLENCE", "KEYWORD_INCITEMENT_VIOLENCE_HATRED"),
    "terrorism": ("STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY", "KEYWORD_TERRORIST_CONTENT"),
    "dangerous_organizations": (
        "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
        "KEYWORD_ILLEGAL_ORGANIZATIONS",
    ),
    "self_harm": ("STATEMENT_CATEGORY_SELF_HARM", None),
    "misinformation": (
        "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
        "KEYWORD_MISINFORMATION_DISINFORMATION",
    ),
    "intellectual_property": ("STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS", None),
    "copyright": (
        "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
        "KEYWORD_COPYRIGHT_INFRINGEMENT",
    ),
    "privacy": ("STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS", None),
    # "Regulated goods" are now "unsafe, non-compliant or prohibited products".
    "regulated_goods": (
        "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS",
        "KEYWORD_PROHIBITED_PRODUCTS",
    ),
    "animal_welfare": ("STATEMENT_CATEGORY_ANIMAL_WELFARE", None),
}
# Any other policy area of the terms of service ("scope of platform service" until 1 July 2025),
# and a law whose kind of illegal content the policy does not say.
OTHER_CATEGORY = ("STATEMENT_CATEGORY_OTHER_VIOLATION_TC", None)
UNSPECIFIED_ILLEGAL = ("STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE", None)

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
    cited = (appeal.decided.policy_cited or policy)[: dsa_rules.MAX_SHORT]
    explanation = _without_ids(
        appeal.decided.rationale or f"The content was found to breach the {policy} policy.",
        appeal.facts,
    )[: dsa_rules.MAX_EXPLANATION]
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


def _category(policy_area: str, ground: str) -> dict[str, Any]:
    illegal = ground == "DECISION_GROUND_ILLEGAL_CONTENT"
    unmapped = UNSPECIFIED_ILLEGAL if illegal else OTHER_CATEGORY
    category, keyword = CATEGORIES.get(policy_area, unmapped)
    return {"category": category, **({"category_specification": [keyword]} if keyword else {})}


def _language(locale: str) -> str | None:
    """The content's language as the database takes it: an upper-case ISO 639-1 code, or
    nothing (a three-letter language has none)."""
    language = locale.split("-", maxsplit=1)[0]
    return language.upper() if len(language) == 2 else None


def _without_ids(text: str, facts: appeal_pb2.SubmissionFacts) -> str:
    """Free text for the database, which must hold no personal data: the actioned item's id
    (for an account, the person's account) is replaced by what it names."""
    subject_id = facts.subject.id
    if not subject_id:
        return text
    return text.replace(subject_id, f"[the {vocabulary.subject_kind_name(facts.subject.kind)}]")


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
        **_category(policy_area, ground["decision_ground"]),
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
        # The content's own date when the surface sent it; else the original decision's.
        "content_date": facts.subject.content_date or _date(original.decided_at.ToDatetime()),
        "application_date": _date(original.decided_at.ToDatetime()),
        "puid": appeal.appeal_id,
        "territorial_scope": _territorial_scope(appeal, ground["decision_ground"]),
        "content_language": _language(facts.locale),
        "decision_facts": _without_ids(appeal.decided.facts or _facts(appeal), facts)[
            : dsa_rules.MAX_FACTS
        ],
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
