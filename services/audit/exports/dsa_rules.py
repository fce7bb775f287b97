"""The EU DSA Transparency Database's rules for a statement of reasons, as it checks them today
(the schema in force since 1 July 2025). Pure.

Taken from the database's own code, GitHub ``digital-services-act/transparency-database`` at
``69e80a0b`` (2026-06-24): the allowed values from ``app/Models/Statement.php``, the field rules
from ``app/Http/Requests/StatementStoreRequest.php`` (the bulk endpoint's
``GroupedSubmissionsService::multi_rules()`` is the same), the change of 1 July 2025 from the
changelog in ``resources/markdown/api-documentation.md``. :func:`violations` says what the
database would refuse in a statement; the export's tests hold every statement they build to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

CATEGORIES = frozenset(
    f"STATEMENT_CATEGORY_{name}"
    for name in (
        "ANIMAL_WELFARE", "CONSUMER_INFORMATION", "CYBER_VIOLENCE",
        "CYBER_VIOLENCE_AGAINST_WOMEN", "DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
        "ILLEGAL_OR_HARMFUL_SPEECH", "INTELLECTUAL_PROPERTY_INFRINGEMENTS",
        "NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS", "NOT_SPECIFIED_NOTICE",
        "OTHER_VIOLATION_TC", "PROTECTION_OF_MINORS", "RISK_FOR_PUBLIC_SECURITY",
        "SCAMS_AND_FRAUD", "SELF_HARM", "UNSAFE_AND_PROHIBITED_PRODUCTS", "VIOLENCE",
    )
)  # fmt: skip
# Refused since 1 July 2025 (with what replaced them, where something did).
REMOVED_CATEGORIES = {
    "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
    "STATEMENT_CATEGORY_UNSAFE_AND_ILLEGAL_PRODUCTS": (
        "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS"
    ),
    "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT": None,
    "STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR": None,
}
# The keywords (category_specification) the export uses; the database accepts any keyword with
# any category.
KEYWORDS = frozenset(
    f"KEYWORD_{name}"
    for name in (
        "ADULT_SEXUAL_MATERIAL", "ANIMAL_HARM", "CHILD_SEXUAL_ABUSE_MATERIAL",
        "COPYRIGHT_INFRINGEMENT", "CYBER_BULLYING_INTIMIDATION", "CYBER_HARASSMENT",
        "HATE_SPEECH", "ILLEGAL_ORGANIZATIONS", "IMPERSONATION_ACCOUNT_HIJACKING",
        "INAUTHENTIC_ACCOUNTS", "INCITEMENT_VIOLENCE_HATRED", "MISINFORMATION_DISINFORMATION",
        "NUDITY", "OTHER", "PHISHING", "PROHIBITED_PRODUCTS", "SELF_MUTILATION",
        "TERRORIST_CONTENT", "UNSAFE_CHALLENGES",
    )
)  # fmt: skip
CONTENT_TYPES = frozenset(
    f"CONTENT_TYPE_{name}"
    for name in ("APP", "AUDIO", "IMAGE", "PRODUCT", "SYNTHETIC_MEDIA", "TEXT", "VIDEO", "OTHER")
)
DECISION_GROUNDS = frozenset(
    {"DECISION_GROUND_ILLEGAL_CONTENT", "DECISION_GROUND_INCOMPATIBLE_CONTENT"}
)
VISIBILITY = frozenset(
    f"DECISION_VISIBILITY_{name}"
    for name in (
        "CONTENT_REMOVED", "CONTENT_DISABLED", "CONTENT_DEMOTED", "CONTENT_AGE_RESTRICTED",
        "CONTENT_INTERACTION_RESTRICTED", "CONTENT_LABELLED", "OTHER",
    )
)  # fmt: skip
MONETARY = frozenset(
    {"DECISION_MONETARY_SUSPENSION", "DECISION_MONETARY_TERMINATION", "DECISION_MONETARY_OTHER"}
)
PROVISION = frozenset(
    f"DECISION_PROVISION_{name}"
    for name in (
        "PARTIAL_SUSPENSION", "TOTAL_SUSPENSION", "PARTIAL_TERMINATION", "TOTAL_TERMINATION"
    )
)  # fmt: skip
MONETARY_OTHER = "DECISION_MONETARY_OTHER"
ACCOUNT = frozenset({"DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED"})
SOURCE_TYPES = frozenset(
    {"SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER", "SOURCE_TYPE_OTHER_NOTIFICATION",
     "SOURCE_VOLUNTARY"}
)  # fmt: skip
AUTOMATED_DECISIONS = frozenset(
    {"AUTOMATED_DECISION_FULLY", "AUTOMATED_DECISION_PARTIALLY", "AUTOMATED_DECISION_NOT_AUTOMATED"}
)
YES_NO = frozenset({"Yes", "No"})
# EU-27 with Iceland, Liechtenstein and Norway; Greece is GR.
TERRITORIES = frozenset(
    ("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
     "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK")
)  # fmt: skip
REQUIRED = (
    "decision_ground", "content_type", "category", "content_date", "application_date",
    "decision_facts", "source_type", "automated_detection", "automated_decision", "puid",
)  # fmt: skip
RESTRICTIONS = (
    "decision_visibility", "decision_monetary", "decision_provision", "decision_account",
)  # fmt: skip
END_DATES = (
    "end_date_visibility_restriction", "end_date_monetary_restriction",
    "end_date_service_restriction", "end_date_account_restriction",
)  # fmt: skip
# Lengths (characters) the database enforces.
MAX_FACTS = 5000
MAX_EXPLANATION = 2000
MAX_SHORT = 500
LATEST_DATE = date(2038, 1, 1)
EARLIEST = {"content_date": date(2000, 1, 1), "application_date": date(2020, 1, 1)}
_PUID = re.compile(r"^[a-zA-Z0-9\-_]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LANGUAGE = re.compile(r"^[A-Z]{2}$")


def violations(statement: Mapping[str, Any]) -> list[str]:
    """What the database would refuse in ``statement``, one line per rule broken."""
    found: list[str] = []

    def given(name: str) -> bool:
        return statement.get(name) not in (None, "", [])

    found += [f"{name} is required" for name in REQUIRED if not given(name)]
    if not any(given(name) for name in RESTRICTIONS):
        found.append(f"one of {', '.join(RESTRICTIONS)} is required")
    _one_of(found, statement, "category", CATEGORIES)
    _one_of(found, statement, "decision_ground", DECISION_GROUNDS)
    _one_of(found, statement, "source_type", SOURCE_TYPES)
    _one_of(found, statement, "automated_decision", AUTOMATED_DECISIONS)
    _one_of(found, statement, "automated_detection", YES_NO)
    _one_of(found, statement, "decision_monetary", MONETARY)
    _one_of(found, statement, "decision_provision", PROVISION)
    _one_of(found, statement, "decision_account", ACCOUNT)
    _each_of(found, statement, "content_type", CONTENT_TYPES)
    _each_of(found, statement, "decision_visibility", VISIBILITY)
    _each_of(found, statement, "category_specification", KEYWORDS)
    _each_of(found, statement, "territorial_scope", TERRITORIES)
    _each_of(found, statement, "category_addition", CATEGORIES)
    ground = statement.get("decision_ground")
    if ground == "DECISION_GROUND_ILLEGAL_CONTENT":
        _text(found, statement, "illegal_content_legal_ground", MAX_SHORT, required=True)
        _text(found, statement, "illegal_content_explanation", MAX_EXPLANATION, required=True)
    elif ground == "DECISION_GROUND_INCOMPATIBLE_CONTENT":
        _text(found, statement, "incompatible_content_ground", MAX_SHORT, required=True)
        _text(found, statement, "incompatible_content_explanation", MAX_EXPLANATION, required=True)
    visibility = statement.get("decision_visibility") or []
    others = (
        ("decision_visibility_other", "DECISION_VISIBILITY_OTHER" in visibility),
        ("decision_monetary_other", statement.get("decision_monetary") == MONETARY_OTHER),
        ("content_type_other", "CONTENT_TYPE_OTHER" in (statement.get("content_type") or [])),
    )
    for name, needed in others:
        _text(found, statement, name, MAX_SHORT, required=needed)
    _text(found, statement, "decision_facts", MAX_FACTS, required=True)
    _text(found, statement, "category_specification_other", MAX_SHORT, required=False)
    puid = str(statement.get("puid") or "")
    if puid and (len(puid) > MAX_SHORT or not _PUID.match(puid)):
        found.append("puid may hold only letters, digits, - and _ (at most 500)")
    language = statement.get("content_language")
    if language is not None and not _LANGUAGE.match(str(language)):
        found.append(f"content_language {language!r} is not an upper-case ISO 639-1 code")
    for name in ("content_date", "application_date", *END_DATES):
        _date(found, statement, name)
    return found


def _one_of(
    found: list[str], statement: Mapping[str, Any], name: str, allowed: frozenset[str]
) -> None:
    value = statement.get(name)
    if value is None or value == "":
        return
    if value not in allowed:
        replaced = REMOVED_CATEGORIES.get(str(value)) if name == "category" else None
        hint = f" (removed on 1 July 2025; now {replaced})" if replaced else ""
        found.append(f"{name} {value!r} is not an allowed value{hint}")


def _each_of(
    found: list[str], statement: Mapping[str, Any], name: str, allowed: frozenset[str]
) -> None:
    values = statement.get(name)
    if values is None:
        return
    if not isinstance(values, list):
        found.append(f"{name} must be a list")
        return
    found += [f"{name} value {value!r} is not allowed" for value in values if value not in allowed]


def _text(
    found: list[str], statement: Mapping[str, Any], name: str, limit: int, *, required: bool
) -> None:
    value = statement.get(name)
    if value in (None, ""):
        if required:
            found.append(f"{name} is required")
        return
    if len(str(value)) > limit:
        found.append(f"{name} is longer than {limit} characters")


def _date(found: list[str], statement: Mapping[str, Any], name: str) -> None:
    value = statement.get(name)
    if value in (None, ""):
        return
    if not _DATE.match(str(value)):
        found.append(f"{name} {value!r} is not a Y-m-d date")
        return
    day = date.fromisoformat(str(value))
    if day < EARLIEST.get(name, date.min) or day > LATEST_DATE:
        found.append(f"{name} {value} is out of the accepted range")
