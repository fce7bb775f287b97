"""The Art. 15(1)(d) DSA figures on complaint handling, per platform and month. Pure.

For each platform and calendar month (UTC): appeals received and their basis (the policy area of
the decision appealed), decisions taken by outcome, reversals (decisions reversed in whole or in
part), and the median and 90th percentile time from submission to decision. A decision counts in
the month it was taken, whenever its appeal arrived.

Percentiles, so a reader can recompute them: the median is the middle value, or the mean of the
two middle values; the 90th percentile is the nearest-rank one, the ⌈0.9·n⌉-th smallest value.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from appeals import vocabulary


@dataclass(frozen=True)
class Received:
    appeal_id: str
    platform: str
    at: datetime
    policy: str


@dataclass(frozen=True)
class Decision:
    appeal_id: str
    platform: str
    at: datetime
    outcome: str
    # When the appeal was submitted; None when the log holds no submitted entry for it.
    submitted_at: datetime | None
    # Decided by an automated assistant: a decision, but not human review.
    by_assistant: bool = False


@dataclass
class MonthlyFigures:
    platform: str
    month: str
    appeals_received: int = 0
    basis: Counter[str] = field(default_factory=Counter)
    decisions: int = 0
    decided_by_people: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    times_s: list[float] = field(default_factory=list)

    @property
    def reversals(self) -> int:
        return self.outcomes["overturned"] + self.outcomes["partially_overturned"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "month": self.month,
            "appeals_received": self.appeals_received,
            "basis": dict(sorted(self.basis.items())),
            "decisions": self.decisions,
            "decided_by_people": self.decided_by_people,
            "upheld": self.outcomes["upheld"],
            "overturned": self.outcomes["overturned"],
            "partially_overturned": self.outcomes["partially_overturned"],
            "reversals": self.reversals,
            "median_time_to_decision_s": median(self.times_s),
            "p90_time_to_decision_s": nearest_rank(self.times_s, 0.9),
        }


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def nearest_rank(values: list[float], quantile: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(quantile * len(ordered))) - 1]


def monthly_report(
    received: Iterable[Received], decisions: Iterable[Decision], *, month: str | None = None
) -> list[dict[str, Any]]:
    """One row per (platform, month), sorted; only ``month`` (``YYYY-MM``) when given."""
    rows: dict[tuple[str, str], MonthlyFigures] = {}

    def row(platform: str, at: datetime) -> MonthlyFigures | None:
        key = (platform, month_of(at))
        if month is not None and key[1] != month:
            return None
        return rows.setdefault(key, MonthlyFigures(*key))

    for appeal in received:
        figures = row(appeal.platform, appeal.at)
        if figures is not None:
            figures.appeals_received += 1
            figures.basis[appeal.policy or "unspecified"] += 1
    for decision in decisions:
        figures = row(decision.platform, decision.at)
        if figures is None:
            continue
        figures.decisions += 1
        figures.decided_by_people += not decision.by_assistant
        figures.outcomes[decision.outcome] += 1
        if decision.submitted_at is not None:
            figures.times_s.append((decision.at - decision.submitted_at).total_seconds())
    return [rows[key].as_dict() for key in sorted(rows)]


CSV_COLUMNS = [
    "platform",
    "month",
    "appeals_received",
    "basis",
    "decisions",
    "decided_by_people",
    "upheld",
    "overturned",
    "partially_overturned",
    "reversals",
    "median_time_to_decision_s",
    "p90_time_to_decision_s",
]


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The report as CSV; ``basis`` becomes ``policy=count`` pairs joined by ``;``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        flat["basis"] = ";".join(f"{name}={count}" for name, count in row["basis"].items())
        for name in ("median_time_to_decision_s", "p90_time_to_decision_s"):
            flat[name] = "" if row[name] is None else f"{row[name]:g}"
        writer.writerow(flat)
    return out.getvalue()


OUTCOME_NAMES = tuple(vocabulary.OUTCOMES)
