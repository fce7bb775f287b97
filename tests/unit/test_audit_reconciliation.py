"""Reconciliation reports every difference between acknowledgements and the log, by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.audit.exports.reconciliation import Acknowledged, LoggedAppeal, Window, reconcile

T0 = datetime(2025, 3, 1, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(days=1))


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_a_log_that_holds_exactly_the_acknowledged_appeals_reconciles() -> None:
    acks = [
        Acknowledged("a", at(1), "submitted event"),
        Acknowledged("b", at(2), "request outcome"),
    ]
    logged = [LoggedAppeal("a", at(1), at(1)), LoggedAppeal("b", at(2), at(2))]

    result = reconcile(acks, logged, WINDOW)

    assert result.ok
    assert (result.acknowledged, result.logged) == (2, 2)


def test_every_kind_of_difference_is_reported_by_id() -> None:
    acks = [
        Acknowledged("kept", at(1), "submitted event"),
        Acknowledged("lost", at(2), "submitted event"),
        Acknowledged("lost-too", at(3), "request outcome"),
        Acknowledged("outside", at(30), "submitted event"),  # after the window: not asked about
    ]
    logged = [
        LoggedAppeal("kept", at(1), at(1)),
        LoggedAppeal("invented", at(4), at(4)),
        LoggedAppeal("orphan", None, at(5)),  # routed, decided... but never submitted
        LoggedAppeal("old-orphan", None, at(-5)),  # before the window
    ]

    result = reconcile(acks, logged, WINDOW)

    assert not result.ok
    assert result.missing_from_log == ["lost", "lost-too"]
    assert result.not_acknowledged == ["invented"]
    assert result.without_submitted == ["orphan"]


def test_acknowledgements_and_entries_on_either_side_of_the_window_edge_still_match() -> None:
    # Acknowledged just before midnight, logged (occurred_at) just after: no difference.
    acks = [Acknowledged("edge", at(23.99), "submitted event")]
    logged = [LoggedAppeal("edge", at(24.01), at(24.01))]
    assert reconcile(acks, logged, WINDOW).ok
