"""Live help's business metrics: declared here, exposed on help's /metrics.

Counters (Prometheus adds ``_total``): ``appeals_help_chats_opened`` by topic and
``appeals_help_chats_closed`` by resolution. Histograms: ``appeals_help_chat_first_answer_seconds``
(from the request to the agent's first message) and ``appeals_help_chat_resolution_seconds`` by
topic (from the request to the close; recorded once per chat, with the closed counter). Gauge:
``appeals_help_chats_waiting``, the chats waiting for an agent AS THIS INSTANCE COUNTED THEM
(opened or handed over here, minus those assigned or closed here): exact with one instance; with
several, sum the instances and read it as a trend (a chat opened on one and taken on another is
counted +1 and -1 apart; each instance reports at least 0). Routing's queue is the authoritative
count.
"""

from __future__ import annotations

from collections.abc import Iterator

from appeals_runtime import metrics
from appeals_runtime.metrics import Kind, declare

# From seconds to the better part of an hour: a first answer is due after two minutes.
FIRST_ANSWER_BUCKETS_S: tuple[float, ...] = (
    5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600,
)  # fmt: skip

# From a minute to a few hours: most chats close within the hour; some wait long for an agent.
RESOLUTION_BUCKETS_S: tuple[float, ...] = (
    60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400,
)  # fmt: skip

HELP_CHATS_OPENED = declare(
    "appeals.help.chats.opened", Kind.COUNTER, "{chat}",
    "Live-help chats opened by people, by topic (account_access, feature_help)",
    ("topic",),
)  # fmt: skip
HELP_CHATS_CLOSED = declare(
    "appeals.help.chats.closed", Kind.COUNTER, "{chat}",
    "Live-help chats closed, by resolution code",
    ("resolution",),
)  # fmt: skip
HELP_CHAT_FIRST_ANSWER = declare(
    "appeals.help.chat.first_answer", Kind.HISTOGRAM, "s",
    "Seconds from a chat's request to an agent's first message",
    (),
    FIRST_ANSWER_BUCKETS_S,
)  # fmt: skip
HELP_CHAT_RESOLUTION = declare(
    "appeals.help.chat.resolution", Kind.HISTOGRAM, "s",
    "Seconds from a chat's request to its close, by topic (account_access, feature_help)",
    ("topic",),
    RESOLUTION_BUCKETS_S,
)  # fmt: skip
HELP_CHATS_WAITING = declare(
    "appeals.help.chats.waiting", Kind.GAUGE, "{chat}",
    "Chats waiting for an agent, as counted in memory by this instance",
)  # fmt: skip

opened = metrics.counter(HELP_CHATS_OPENED)
closed = metrics.counter(HELP_CHATS_CLOSED)
first_answer = metrics.histogram(HELP_CHAT_FIRST_ANSWER)
resolution = metrics.histogram(HELP_CHAT_RESOLUTION)


class WaitingCount:
    """This instance's count of waiting chats (see the module's note)."""

    def __init__(self) -> None:
        self.value = 0

    def add(self, change: int) -> None:
        self.value = max(0, self.value + change)


WAITING = WaitingCount()


def _waiting() -> Iterator[tuple[float, dict[str, str]]]:
    yield WAITING.value, {}


metrics.gauge(HELP_CHATS_WAITING, _waiting)
