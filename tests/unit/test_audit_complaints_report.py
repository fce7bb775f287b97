"""The Art. 15 complaint-handling report against figures computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from services.audit.exports import complaints_report
from services.audit.exports.complaints_report import Decision, Received


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


RECEIVED = [
    Received("a1", "instagram", at(3, 1, 10), "hate_speech"),
    Received("a2", "instagram", at(3, 2), "hate_speech"),
    Received("a3", "instagram", at(3, 3), "hate_speech"),
    Received("a4", "instagram", at(2, 28, 23, 59), "spam"),  # February
    Received("a5", "instagram", at(3, 10), "spam"),
    Received("a7", "instagram", at(3, 31, 23, 59), "nudity"),
    Received("f1", "facebook", at(3, 15), "fake_account"),
]
DECISIONS = [
    Decision("a1", "instagram", at(3, 1, 12), "upheld", at(3, 1, 10)),  # 7 200 s
    Decision("a2", "instagram", at(3, 3), "overturned", at(3, 2)),  # 86 400 s
    Decision("a3", "instagram", at(3, 3, 1), "partially_overturned", at(3, 3)),  # 3 600 s
    Decision("a4", "instagram", at(3, 1, 0, 9), "upheld", at(2, 28, 23, 59)),  # 600 s
    Decision("a5", "instagram", at(4, 1), "upheld", at(3, 10)),  # April
    # No submitted entry: untimed; decided by an automated assistant: not by a person.
    Decision("a6", "instagram", at(3, 20), "overturned", None, by_assistant=True),
]

# By hand, Instagram, March 2025:
#   received a1 a2 a3 a5 a7 = 5; basis hate_speech 3, nudity 1, spam 1
#   decided a1 a2 a3 a4 a6 = 5, by people 4 (a6 by an assistant); upheld a1 a4, overturned a2 a6,
#   partially a3; reversals 3
#   times (s) 7200, 86400, 3600, 600 -> sorted 600, 3600, 7200, 86400
#   median = (3600 + 7200) / 2 = 5400; p90 = the ceil(0.9 * 4) = 4th smallest = 86400
INSTAGRAM_MARCH = {
    "platform": "instagram",
    "month": "2025-03",
    "appeals_received": 5,
    "basis": {"hate_speech": 3, "nudity": 1, "spam": 1},
    "decisions": 5,
    "decided_by_people": 4,
    "upheld": 2,
    "overturned": 2,
    "partially_overturned": 1,
    "reversals": 3,
    "median_time_to_decision_s": 5400.0,
    "p90_time_to_decision_s": 86400.0,
}
FACEBOOK_MARCH = {
    "platform": "facebook",
    "month": "2025-03",
    "appeals_received": 1,
    "basis": {"fake_account": 1},
    "decisions": 0,
    "decided_by_people": 0,
    "upheld": 0,
    "overturned": 0,
    "partially_overturned": 0,
    "reversals": 0,
    "median_time_to_decision_s": None,
    "p90_time_to_decision_s": None,
}


def test_one_month_matches_the_hand_computation() -> None:
    rows = complaints_report.monthly_report(RECEIVED, DECISIONS, month="2025-03")
    assert rows == [FACEBOOK_MARCH, INSTAGRAM_MARCH]


def test_every_month_gets_its_own_row() -> None:
    rows = complaints_report.monthly_report(RECEIVED, DECISIONS)
    assert [(row["platform"], row["month"]) for row in rows] == [
        ("facebook", "2025-03"),
        ("instagram", "2025-02"),
        ("instagram", "2025-03"),
        ("instagram", "2025-04"),
    ]
    april = rows[-1]
    # a5: submitted 10 March, decided 1 April = 22 days.
    assert (april["decisions"], april["median_time_to_decision_s"]) == (1, 22 * 86400.0)


def test_the_csv_flattens_the_basis_and_leaves_missing_times_empty() -> None:
    rows = complaints_report.monthly_report(RECEIVED, DECISIONS, month="2025-03")
    assert complaints_report.to_csv(rows).splitlines() == [
        "platform,month,appeals_received,basis,decisions,decided_by_people,upheld,overturned,"
        "partially_overturned,reversals,median_time_to_decision_s,p90_time_to_decision_s",
        "facebook,2025-03,1,fake_account=1,0,0,0,0,0,0,,",
        "instagram,2025-03,5,hate_speech=3;nudity=1;spam=1,5,4,2,2,1,3,5400,86400",
    ]


def test_percentiles_follow_the_documented_definitions() -> None:
    assert complaints_report.median([3.0, 1.0, 2.0]) == 2.0
    assert complaints_report.nearest_rank([float(n) for n in range(1, 11)], 0.9) == 9.0
    assert complaints_report.nearest_rank([float(n) for n in range(1, 12)], 0.9) == 10.0
    assert complaints_report.nearest_rank([5.0], 0.9) == 5.0
    assert complaints_report.median([]) is None
