"""What the page reads of the services' ``/metrics``: the ops page's side of that contract.

Each service declares its business metrics in its own ``metrics`` module; the page, a service
like any other, does not import them. It names here, once, the metrics it reads (name, kind,
unit, labels: what an exposition is queried by), and ``tests/unit/test_ops_figures.py`` checks
every one against the declaring service's, so a metric renamed or relabelled there fails a test
instead of leaving a figure at "no data". The runtime's own metrics (consumer lag, DLQ sizes)
come from :mod:`appeals_runtime.metrics`, which every service shares.
"""

from __future__ import annotations

from appeals_runtime.metrics import CONSUMER_LAG, DLQ_RECORDS, Kind, Metric

__all__ = [
    "AGENTS_ONLINE", "APPEALS_RECEIVED", "APPEALS_REJECTED", "CASES_ROUTED", "CHATS_WAITING",
    "CONSUMER_LAG", "DECISIONS", "DLQ_RECORDS", "HELP_CHATS_CLOSED", "HELP_CHATS_OPENED",
    "HELP_CHAT_FIRST_ANSWER", "HELP_CHAT_RESOLUTION", "NOTIFICATIONS_DELIVERED",
    "NOTIFICATIONS_FAILED", "QUEUE_BREACHED", "QUEUE_DEPTH", "QUEUE_OLDEST_AGE",
    "READ_FROM_SERVICES", "REFERRALS_OPEN", "REFERRALS_OVERDUE", "SLA_BREACHES", "SLA_WARNINGS",
]  # fmt: skip


def _read(name: str, kind: Kind, unit: str, *attributes: str) -> Metric:
    return Metric(name, kind, unit, "read by the ops page", attributes)


# intake
APPEALS_RECEIVED = _read("appeals.intake.received", Kind.COUNTER, "{appeal}", "platform", "channel")
APPEALS_REJECTED = _read("appeals.intake.rejected", Kind.COUNTER, "{request}", "reason", "channel")
# routing
CASES_ROUTED = _read("appeals.routing.routed", Kind.COUNTER, "{case}", "queue", "platform", "rule")
QUEUE_DEPTH = _read("appeals.routing.queue.depth", Kind.GAUGE, "{case}", "queue")
QUEUE_OLDEST_AGE = _read("appeals.routing.queue.oldest_age", Kind.GAUGE, "s", "queue")
QUEUE_BREACHED = _read("appeals.routing.queue.breached", Kind.GAUGE, "{case}", "queue")
REFERRALS_OPEN = _read("appeals.routing.referrals.open", Kind.GAUGE, "{case}", "body")
REFERRALS_OVERDUE = _read("appeals.routing.referrals.overdue", Kind.GAUGE, "{case}", "body")
AGENTS_ONLINE = _read("appeals.routing.agents.online", Kind.GAUGE, "{agent}")
SLA_WARNINGS = _read("appeals.routing.sla.warnings", Kind.COUNTER, "{case}", "queue", "platform")
SLA_BREACHES = _read("appeals.routing.sla.breaches", Kind.COUNTER, "{case}", "queue", "platform")
DECISIONS = _read(
    "appeals.routing.decisions", Kind.COUNTER, "{decision}",
    "outcome", "queue", "platform", "status",
)  # fmt: skip
# routing: live-help chats waiting for an agent (its live collection's count: the authoritative
# one, alike on every instance; help's own per-instance gauge is only a trend)
CHATS_WAITING = _read("appeals.routing.chats.waiting", Kind.GAUGE, "{chat}")
# live help
HELP_CHATS_OPENED = _read("appeals.help.chats.opened", Kind.COUNTER, "{chat}", "topic")
HELP_CHATS_CLOSED = _read("appeals.help.chats.closed", Kind.COUNTER, "{chat}", "resolution")
HELP_CHAT_FIRST_ANSWER = _read("appeals.help.chat.first_answer", Kind.HISTOGRAM, "s")
HELP_CHAT_RESOLUTION = _read("appeals.help.chat.resolution", Kind.HISTOGRAM, "s", "topic")
# notifications
NOTIFICATIONS_DELIVERED = _read(
    "appeals.notifications.delivered", Kind.COUNTER, "{notification}", "channel", "kind"
)
NOTIFICATIONS_FAILED = _read(
    "appeals.notifications.failed", Kind.COUNTER, "{attempt}", "channel", "kind", "permanent"
)

# Every metric above that a service (not the runtime) declares: what the contract test checks.
READ_FROM_SERVICES: tuple[Metric, ...] = (
    APPEALS_RECEIVED, APPEALS_REJECTED, CASES_ROUTED, QUEUE_DEPTH, QUEUE_OLDEST_AGE,
    QUEUE_BREACHED, REFERRALS_OPEN, REFERRALS_OVERDUE, AGENTS_ONLINE, SLA_WARNINGS, SLA_BREACHES,
    DECISIONS, CHATS_WAITING, HELP_CHATS_OPENED, HELP_CHATS_CLOSED, HELP_CHAT_FIRST_ANSWER,
    HELP_CHAT_RESOLUTION, NOTIFICATIONS_DELIVERED, NOTIFICATIONS_FAILED,
)  # fmt: skip
