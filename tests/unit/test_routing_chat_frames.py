"""What routing's desk relays of a live-help chat message: every field the contract carries."""

from __future__ import annotations

from appeals.v1 import chat_pb2
from services.routing.grpc_api import server_frame

PDF = {"media_type": "application/pdf", "uri": "https://cdn.example.org/id.pdf", "size_bytes": 900}


def test_a_persons_message_reaches_the_desk_with_its_attachments() -> None:
    frame = server_frame(
        (
            "message",
            {
                "chat_id": "ch_1", "seq": 3, "party": "person", "text": "my ID, as asked",
                "client_id": "p-3", "sent_at": "2026-12-06T10:00:00+00:00",
                "attachments": [PDF],
            },
        )
    )  # fmt: skip
    message = frame.message
    assert (message.chat_id, message.seq, message.party, message.text) == (
        "ch_1", 3, chat_pb2.CHAT_PARTY_PERSON, "my ID, as asked",
    )  # fmt: skip
    assert [(a.media_type, a.uri, a.size_bytes) for a in message.attachments] == [
        ("application/pdf", "https://cdn.example.org/id.pdf", 900)
    ]
    assert message.sent_at.seconds > 0


def test_a_message_without_attachments_carries_none() -> None:
    frame = server_frame(("message", {"chat_id": "ch_1", "seq": 1, "party": "agent", "text": "hi"}))
    assert list(frame.message.attachments) == []
