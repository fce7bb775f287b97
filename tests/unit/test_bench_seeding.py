"""History seeding's id rewriting: clones get fresh, consistent ids; shapes stay intact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson
from bson import Binary, ObjectId

from appeals.v1 import appeal_pb2, events_pb2
from bench.seeding import messages
from bench.seeding.clone import prepare, render
from bench.seeding.template import (
    StoredDocument,
    Template,
    appeal_token,
    rewritable_tokens,
    store_codec,
)
from bench.seeding.tokens import Pattern, TokenMap, locate, tokens_in_document, tokens_in_text

APPEAL = "ap_3f0c2a9d41b7e8c5a6d2f19e0b"
OTHER = "ap_0a1b2c3d4e5f60718293a4b5c6"
EVENT = "5b0f6c2e-5a8e-4d7e-9a43-1f3f0c6d7a11"


def test_tokens_are_runs_with_a_digit_and_dates_and_words_are_not() -> None:
    text = f"{APPEAL}:{EVENT} reviewer-12 instagram.hate_speech.de 2026-12-04T10:00:00Z"
    assert set(tokens_in_text(text)) == {
        "3f0c2a9d41b7e8c5a6d2f19e0b",
        "5b0f6c2e",
        "1f3f0c6d7a11",
    }


def test_document_tokens_include_keys_and_nested_values() -> None:
    document = {"_id": APPEAL, "by_event": {"abc12345678": [{"user": "1234567890123"}]}}
    assert tokens_in_document(document) == {
        appeal_token(APPEAL),
        "abc12345678",
        "1234567890123",
    }


def test_a_token_is_rewritable_only_when_one_appeal_owns_it() -> None:
    appeals = {appeal_token(APPEAL): APPEAL, appeal_token(OTHER): OTHER}
    documents = [
        {appeal_token(APPEAL), "11112222333", "reviewer0001"},
        {appeal_token(APPEAL), "44445555666"},
        {appeal_token(OTHER), "77778888999", "reviewer0001"},
        {"reviewer0001", "55556666777"},  # shared state (an agent's document)
        {"44445555666", "202612041800"},  # a bucket listing keys: does not share them
    ]
    assert rewritable_tokens(documents, appeals) == {
        appeal_token(APPEAL),
        appeal_token(OTHER),
        "11112222333",
        "44445555666",
        "77778888999",
    }


def test_variants_are_unique_across_tokens_and_clones_and_keep_the_alphabet() -> None:
    tokens = ["3f0c2a9d41b7e8c5a6d2f19e0b", "3f0c2a9d41b7e8c5a6d2f19e0c", "17841400000000001"]
    token_map = TokenMap.build(tokens, max_clones=500)
    seen = set()
    for clone in range(1, 501):
        for number in range(len(tokens)):
            variant = token_map.variant(number, clone)
            assert len(variant) == len(token_map.tokens[number])
            assert variant[0] == token_map.tokens[number][0]
            seen.add(variant)
    assert len(seen) == 500 * len(tokens)
    assert not seen & set(tokens)
    assert all(c in "0123456789abcdef" for c in token_map.variant(0, 7))


def test_rewriting_is_consistent_inside_strings_and_composite_ids() -> None:
    token_map = TokenMap.build([appeal_token(APPEAL), "5b0f6c2e", "1f3f0c6d7a11"], max_clones=9)
    first = token_map.rewrite_text(f"{APPEAL}:{EVENT}", 3)
    appeal, event = first.split(":", 1)
    assert appeal == token_map.rewrite_text(APPEAL, 3) != APPEAL
    assert event.startswith(token_map.rewrite_text("5b0f6c2e", 3)) and len(event) == len(EVENT)
    assert "-5a8e-4d7e-9a43-" in event


def test_protobuf_framing_survives_rewriting_even_with_glued_tag_bytes() -> None:
    submission = appeal_pb2.AppealSubmission(
        appellant=appeal_pb2.Appellant(user_id="17841400000000001"),
        subject=appeal_pb2.Subject(id="3141592653589793"),
        locale="de-DE",
    )
    raw = submission.SerializeToString()
    token_map = TokenMap.build(["17841400000000001", "3141592653589793"], max_clones=50)
    places = locate(raw, token_map.index)
    assert len(places) == 2
    clone = appeal_pb2.AppealSubmission()
    clone.ParseFromString(Pattern.of(raw, places).render(token_map.variants(42)))
    assert clone.appellant.user_id == token_map.rewrite_text("17841400000000001", 42)
    assert clone.subject.id == token_map.rewrite_text("3141592653589793", 42)
    assert clone.subject.id != "3141592653589793"
    assert clone.locale == "de-DE"


def test_locate_trims_bytes_glued_to_a_known_token() -> None:
    token_map = TokenMap.build(["12345678901"], max_clones=3)
    assert locate(b"\x00Z12345678901R\x05", token_map.index) == [(2, 13, 0)]


def test_message_strings_are_read_and_rewritten_in_place() -> None:
    event = events_pb2.AppealEvent(event_id=EVENT, appeal_id=APPEAL)
    event.decided.concurring_agent_ids.append("agent-0042")
    assert set(messages.strings(event)) == {EVENT, APPEAL, "agent-0042"}
    messages.rewrite_strings(event, str.upper)
    assert event.appeal_id == APPEAL.upper()
    assert list(event.decided.concurring_agent_ids) == ["AGENT-0042"]


def _stored(document: Mapping[str, Any]) -> StoredDocument:
    return StoredDocument("appeals", "things", bson.encode(document))


def test_cloned_documents_decode_with_new_ids_and_a_fresh_object_id() -> None:
    submission = appeal_pb2.AppealSubmission(appellant=appeal_pb2.Appellant(user_id="98765432101"))
    with_key = {"_id": f"{APPEAL}:{EVENT}", "appeal_id": APPEAL, "n": 3,
                "submission": Binary(submission.SerializeToString())}  # fmt: skip
    with_object_id = {"_id": ObjectId(), "appeal_id": APPEAL}
    shared = {"_id": "reviewer-1", "appeal_id": APPEAL}
    rewritable = {appeal_token(APPEAL), "5b0f6c2e", "1f3f0c6d7a11", "98765432101"}
    template = Template([APPEAL], [_stored(d) for d in (with_key, with_object_id, shared)], [],
                        rewritable)  # fmt: skip
    token_map = template.token_map(max_clones=10)
    prepared, skipped = prepare(template, token_map)
    assert skipped == {"appeals.things": 1}  # its _id would not change: left out
    keyed, objectid = (
        bson.decode(render(item, token_map.variants(2)).raw, codec_options=store_codec())
        for item in prepared
    )
    new_appeal = token_map.rewrite_text(APPEAL, 2)
    assert keyed["_id"].startswith(new_appeal + ":") and keyed["appeal_id"] == new_appeal
    assert keyed["n"] == 3
    parsed = appeal_pb2.AppealSubmission()
    parsed.ParseFromString(bytes(keyed["submission"]))
    assert parsed.appellant.user_id == token_map.rewrite_text("98765432101", 2)
    assert isinstance(objectid["_id"], ObjectId) and objectid["_id"] != with_object_id["_id"]
    assert objectid["appeal_id"] == new_appeal
