"""The names the outside world uses for protobuf enum values, in one place.

REST bodies, templates, logs and queue names say ``instagram`` / ``post`` / ``overturned``; the
protobuf contracts use enum numbers. Every translation between the two goes through here.
"""

from __future__ import annotations

from appeals import platforms
from appeals.v1 import appeal_pb2, chat_pb2

# Declared in platforms.yaml (see appeals.platforms).
PLATFORMS: dict[str, int] = {p.name: p.value for p in platforms.PLATFORMS}

SUBJECT_KINDS: dict[str, int] = {
    "post": appeal_pb2.SUBJECT_KIND_POST,
    "comment": appeal_pb2.SUBJECT_KIND_COMMENT,
    "reel": appeal_pb2.SUBJECT_KIND_REEL,
    "story": appeal_pb2.SUBJECT_KIND_STORY,
    "message": appeal_pb2.SUBJECT_KIND_MESSAGE,
    "account": appeal_pb2.SUBJECT_KIND_ACCOUNT,
    "page": appeal_pb2.SUBJECT_KIND_PAGE,
    "group": appeal_pb2.SUBJECT_KIND_GROUP,
    "event": appeal_pb2.SUBJECT_KIND_EVENT,
    "vr_world": appeal_pb2.SUBJECT_KIND_VR_WORLD,
    "avatar": appeal_pb2.SUBJECT_KIND_AVATAR,
}

STATUSES: dict[str, int] = {
    "received": appeal_pb2.APPEAL_STATUS_RECEIVED,
    "routed": appeal_pb2.APPEAL_STATUS_ROUTED,
    "in_review": appeal_pb2.APPEAL_STATUS_IN_REVIEW,
    "decided": appeal_pb2.APPEAL_STATUS_DECIDED,
    "escalated": appeal_pb2.APPEAL_STATUS_ESCALATED,
    "awaiting_information": appeal_pb2.APPEAL_STATUS_AWAITING_INFORMATION,
}

OUTCOMES: dict[str, int] = {
    "upheld": appeal_pb2.OUTCOME_UPHELD,
    "overturned": appeal_pb2.OUTCOME_OVERTURNED,
    "partially_overturned": appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED,
}

APPELLANT_ROLES: dict[str, int] = {
    "affected_user": appeal_pb2.APPELLANT_ROLE_AFFECTED_USER,
    "reporter": appeal_pb2.APPELLANT_ROLE_REPORTER,
}

# Live help's chats: what a chat is about, and who said a message.
CHAT_TOPICS: dict[str, int] = {
    "account_access": chat_pb2.CHAT_TOPIC_ACCOUNT_ACCESS,
    "feature_help": chat_pb2.CHAT_TOPIC_FEATURE_HELP,
}

CHAT_PARTIES: dict[str, int] = {
    "person": chat_pb2.CHAT_PARTY_PERSON,
    "agent": chat_pb2.CHAT_PARTY_AGENT,
    "system": chat_pb2.CHAT_PARTY_SYSTEM,
}


def _inverse(mapping: dict[str, int]) -> dict[int, str]:
    return {number: name for name, number in mapping.items()}


_PLATFORM_NAMES = _inverse(PLATFORMS)
_SUBJECT_KIND_NAMES = _inverse(SUBJECT_KINDS)
# The status an appeal has after each status-changing lifecycle event (others leave it as it
# was): intake's status view and the ops page's search both read appeals this way.
STATUS_AFTER_EVENT: dict[str, str] = {
    "submitted": "received",
    "routed": "routed",
    "claimed": "in_review",
    "released": "routed",
    "transferred": "routed",
    "decided": "decided",
    "escalated": "escalated",
    "info_requested": "awaiting_information",
    "info_provided": "routed",
}
_STATUS_NAMES = _inverse(STATUSES)
_OUTCOME_NAMES = _inverse(OUTCOMES)
_CHAT_TOPIC_NAMES = _inverse(CHAT_TOPICS)


def platform_name(value: int) -> str:
    return _PLATFORM_NAMES.get(value, "unspecified")


def subject_kind_name(value: int) -> str:
    return _SUBJECT_KIND_NAMES.get(value, "unspecified")


def status_name(value: int) -> str:
    return _STATUS_NAMES.get(value, "unspecified")


def outcome_name(value: int) -> str:
    return _OUTCOME_NAMES.get(value, "unspecified")


def chat_topic_name(value: int) -> str:
    return _CHAT_TOPIC_NAMES.get(value, "unspecified")
