"""Intake's business metrics: declared here, exposed on intake's /metrics.

Counters (Prometheus adds ``_total``): appeals received by platform and channel, submissions
refused by reason and channel, and accepted appeals flagged for ban evasion by platform.
"""

from __future__ import annotations

from appeals_runtime.metrics import Kind, counter, declare

APPEALS_RECEIVED = declare(
    "appeals.intake.received", Kind.COUNTER, "{appeal}",
    "Appeals accepted and acknowledged by the broker (replays of an idempotent request excluded)",
    ("platform", "channel"),
)  # fmt: skip
APPEALS_REJECTED = declare(
    "appeals.intake.rejected", Kind.COUNTER, "{request}",
    "Submissions refused, by reason (invalid, ineligible, duplicate, rate_limited, forbidden, "
    "unavailable, ...) and channel",
    ("reason", "channel"),
)  # fmt: skip
BAN_EVASION_FLAGGED = declare(
    "appeals.intake.ban_evasion.flagged", Kind.COUNTER, "{appeal}",
    "Accepted appeals flagged for routing because the appellant is linked to evasion removals",
    ("platform",),
)  # fmt: skip

received = counter(APPEALS_RECEIVED)
rejected = counter(APPEALS_REJECTED)
flagged = counter(BAN_EVASION_FLAGGED)
