"""The topic registry: unique names, a DLQ each, appeal events keyed by appeal id."""

from __future__ import annotations

from appeals import topics
from appeals.v1 import appeal_pb2, commands_pb2, events_pb2


def test_every_topic_name_is_unique_and_has_a_dlq() -> None:
    names = list(topics.all_topic_names())
    assert len(names) == len(set(names))
    for topic in topics.REGISTRY:
        assert topic.dlq == f"{topic.name}.dlq"
        assert topic.dlq in names


def test_appeal_events_are_keyed_by_appeal_id() -> None:
    event = events_pb2.AppealEvent(event_id="e-1", appeal_id="ap-42")
    assert topics.APPEAL_LIFECYCLE.key(event) == "ap-42"
    assert topics.APPEAL_LIFECYCLE.decode(event.SerializeToString()) == event


def test_each_platform_has_its_own_restore_commands_topic() -> None:
    names = {topics.restore_commands_topic(p).name for p in topics.PLATFORM_NAMES}
    assert len(names) == 4
    command = commands_pb2.RestoreCommand(appeal_id="ap-1", platform=appeal_pb2.PLATFORM_WHATSAPP)
    whatsapp = topics.restore_commands_topic(appeal_pb2.PLATFORM_WHATSAPP)
    assert "whatsapp" in whatsapp.name
    assert whatsapp.key(command) == "ap-1"
