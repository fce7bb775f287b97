"""Whether an appeal may be made at all: window per jurisdiction, non-appealable decisions and
who may appeal a decision not to act. The rules live in ``eligibility.yaml``; this module only
loads, validates and applies them (pure, no I/O after loading)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from appeals.v1 import appeal_pb2

DEFAULT_RULES_FILE = Path(__file__).with_name("eligibility.yaml")


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Jurisdiction(_Rules):
    days: int = Field(gt=0)
    minimum_days: int = Field(default=0, ge=0)
    countries: list[str]

    @model_validator(mode="after")
    def _at_least_the_legal_minimum(self) -> Jurisdiction:
        if self.days < self.minimum_days:
            raise ValueError(f"days ({self.days}) is below the legal minimum ({self.minimum_days})")
        return self


class AppealWindows(_Rules):
    default_days: int = Field(gt=0)
    jurisdictions: dict[str, Jurisdiction]

    @model_validator(mode="after")
    def _each_country_once(self) -> AppealWindows:
        seen: dict[str, str] = {}
        for name, jurisdiction in self.jurisdictions.items():
            for country in jurisdiction.countries:
                if country in seen:
                    raise ValueError(f"{country} is in both {seen[country]} and {name}")
                seen[country] = name
        return self


class EligibilityRules(_Rules):
    appeal_windows: AppealWindows
    non_appealable_reasons: dict[str, str]
    no_action_decisions: list[str]

    def window(self, country: str) -> tuple[str, timedelta]:
        for name, jurisdiction in self.appeal_windows.jurisdictions.items():
            if country in jurisdiction.countries:
                return name, timedelta(days=jurisdiction.days)
        return "default", timedelta(days=self.appeal_windows.default_days)


def load_rules(path: Path = DEFAULT_RULES_FILE) -> EligibilityRules:
    """Load and validate; a bad file stops start-up with the offending key named."""
    return EligibilityRules.model_validate(yaml.safe_load(path.read_text()))


@dataclass(frozen=True)
class Ineligible:
    # Machine-readable: "appeal_window_closed", "not_appealable", "reporter_needs_no_action",
    # "nothing_to_restore".
    code: str
    detail: str


def check(
    submission: appeal_pb2.AppealSubmission, rules: EligibilityRules, *, now: datetime
) -> Ineligible | None:
    decision = submission.decision
    if decision.non_appealable_reason:
        reasons = rules.non_appealable_reasons
        return Ineligible(
            "not_appealable",
            reasons.get(decision.non_appealable_reason, reasons.get("generic", "Not appealable.")),
        )
    no_action = decision.action in rules.no_action_decisions
    if submission.appellant.role == appeal_pb2.APPELLANT_ROLE_REPORTER and not no_action:
        return Ineligible(
            "reporter_needs_no_action",
            "People who reported content may appeal a decision not to act on it; this decision "
            f"({decision.action}) did act.",
        )
    if submission.appellant.role != appeal_pb2.APPELLANT_ROLE_REPORTER and no_action:
        return Ineligible(
            "nothing_to_restore",
            "Nothing was done to this content or account, so there is nothing to appeal.",
        )
    told = decision.notified_at if decision.HasField("notified_at") else decision.decided_at
    told_at = told.ToDatetime(tzinfo=UTC)
    jurisdiction, window = rules.window(submission.country)
    if now > told_at + window:
        return Ineligible(
            "appeal_window_closed",
            f"Appeals against this decision were possible until {(told_at + window).date()} "
            f"({window.days} days in {jurisdiction}).",
        )
    return None
