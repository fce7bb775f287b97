"""Every metric the pipeline declares, runtime's and each service's, in one namespace for tests.

Importing this module imports every service's ``metrics`` module, so
``appeals_runtime.metrics.REGISTRY`` then holds every declaration (the deploy files' and the ops
page's contract tests read it).
"""

from __future__ import annotations

from appeals_runtime.metrics import (
    CONSUMER_LAG,
    CONSUMER_MESSAGES,
    DB_CLIENT_DURATION,
    DLQ_PUBLISHED,
    DLQ_RECORDS,
    HTTP_SERVER_DURATION,
    MESSAGING_PROCESS_DURATION,
    REGISTRY,
    RPC_SERVER_DURATION,
    prometheus_label,
)
from services.audit.metrics import AUDIT_APPENDED, AUDIT_CHECKPOINTS
from services.help.metrics import (
    HELP_CHAT_FIRST_ANSWER,
    HELP_CHAT_RESOLUTION,
    HELP_CHATS_CLOSED,
    HELP_CHATS_OPENED,
    HELP_CHATS_WAITING,
)
from services.intake.metrics import APPEALS_RECEIVED, APPEALS_REJECTED, BAN_EVASION_FLAGGED
from services.notifications.metrics import (
    NOTIFICATIONS_DELIVERED,
    NOTIFICATIONS_FAILED,
)
from services.routing.metrics import (
    AGENTS_ONLINE,
    CASES_ROUTED,
    CHAT_OFFERS,
    CHATS_ACCEPTED,
    CHATS_WAITING,
    DECISIONS,
    QUEUE_BREACHED,
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE,
    REFERRALS_OPEN,
    REFERRALS_OVERDUE,
    SLA_BREACHES,
    SLA_WARNINGS,
    TIME_TO_DECISION,
)

__all__ = [
    "AGENTS_ONLINE", "APPEALS_RECEIVED", "APPEALS_REJECTED", "AUDIT_APPENDED", "AUDIT_CHECKPOINTS",
    "BAN_EVASION_FLAGGED", "CASES_ROUTED", "CHATS_ACCEPTED", "CHATS_WAITING", "CHAT_OFFERS",
    "CONSUMER_LAG", "CONSUMER_MESSAGES", "DB_CLIENT_DURATION", "DECISIONS", "DLQ_PUBLISHED",
    "DLQ_RECORDS", "HELP_CHATS_CLOSED", "HELP_CHATS_OPENED", "HELP_CHATS_WAITING",
    "HELP_CHAT_FIRST_ANSWER", "HELP_CHAT_RESOLUTION", "HTTP_SERVER_DURATION",
    "MESSAGING_PROCESS_DURATION", "NOTIFICATIONS_DELIVERED", "NOTIFICATIONS_FAILED",
    "QUEUE_BREACHED", "QUEUE_DEPTH", "QUEUE_OLDEST_AGE", "REFERRALS_OPEN", "REFERRALS_OVERDUE",
    "REGISTRY", "RPC_SERVER_DURATION", "SLA_BREACHES", "SLA_WARNINGS", "TIME_TO_DECISION",
    "prometheus_label",
]  # fmt: skip
