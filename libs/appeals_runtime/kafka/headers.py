"""Kafka header names and helpers, declared once."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka.structs import ConsumerRecord

from appeals_runtime.errors import InvalidMessage

Headers = list[tuple[str, bytes]]

SCHEMA = "appeals.schema"
PRODUCER = "appeals.producer"
# The version of a routing case an event announces (the sequence number of the case record it
# comes from): other routing instances compare it with what they hold before reading the case.
CASE_VERSION = "appeals.case.version"

# Dead-letter headers: what went wrong, where the message came from, how often it was tried.
DLQ_ERROR_TYPE = "dlq.error.type"
DLQ_ERROR_MESSAGE = "dlq.error.message"
DLQ_ERROR_FIELD = "dlq.error.field"
DLQ_ATTEMPTS = "dlq.attempts"
DLQ_ORIGINAL_TOPIC = "dlq.original.topic"
DLQ_ORIGINAL_PARTITION = "dlq.original.partition"
DLQ_ORIGINAL_OFFSET = "dlq.original.offset"
DLQ_ORIGINAL_TIMESTAMP = "dlq.original.timestamp"
DLQ_CONSUMER_GROUP = "dlq.consumer.group"
DLQ_FAILED_AT = "dlq.failed.at"

_MAX_HEADER_TEXT = 1000


def failure_reason(error: BaseException) -> str:
    """What a DLQ entry and its log line say went wrong."""
    return error.reason if isinstance(error, InvalidMessage) else repr(error)


def dead_letter_headers(
    record: ConsumerRecord[Any, Any], error: BaseException, *, attempts: int, group_id: str
) -> Headers:
    """The original record's headers plus the ``dlq.*`` ones that explain why it was parked."""
    extra = {
        DLQ_ERROR_TYPE: text(type(error).__name__),
        DLQ_ERROR_MESSAGE: text(failure_reason(error)),
        DLQ_ATTEMPTS: text(attempts),
        DLQ_ORIGINAL_TOPIC: text(record.topic),
        DLQ_ORIGINAL_PARTITION: text(record.partition),
        DLQ_ORIGINAL_OFFSET: text(record.offset),
        DLQ_ORIGINAL_TIMESTAMP: text(record.timestamp),
        DLQ_CONSUMER_GROUP: text(group_id),
        DLQ_FAILED_AT: text(int(time.time() * 1000)),
    }
    if isinstance(error, InvalidMessage) and error.field:
        extra[DLQ_ERROR_FIELD] = text(error.field)
    return merge(list(record.headers or ()), extra)


def as_dict(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, bytes]:
    """Last value wins, as with HTTP headers set twice."""
    return dict(headers or ())


def text(value: object) -> bytes:
    """Header value as UTF-8, cut to a size that keeps a DLQ record small."""
    return str(value)[:_MAX_HEADER_TEXT].encode()


def merge(base: Sequence[tuple[str, bytes]], extra: Mapping[str, bytes]) -> Headers:
    """Headers of ``base`` with ``extra`` replacing any of the same name."""
    kept = [(name, value) for name, value in base if name not in extra]
    return kept + list(extra.items())
