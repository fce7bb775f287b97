"""How often `appeals agent` renews a claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from appeals.v1 import agent_desk_pb2
from appeals_cli.reviewer import heartbeat_interval


def claimed_until(moment: datetime) -> agent_desk_pb2.ClaimResponse:
    claimed = agent_desk_pb2.ClaimResponse(appeal_id="a")
    claimed.lease_expires_at.FromDatetime(moment)
    return claimed


def test_a_claim_is_renewed_three_times_per_lease() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert heartbeat_interval(claimed_until(now + timedelta(minutes=15)), now) == 300


def test_a_short_or_already_lapsed_lease_is_renewed_every_second() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert heartbeat_interval(claimed_until(now + timedelta(seconds=2)), now) == 1.0
    assert heartbeat_interval(claimed_until(now - timedelta(seconds=5)), now) == 1.0
