"""One rule for what a person may attach (``appeals.attachments``), whichever way it comes in:
intake's appeals and answers to requests for information, and live help's chat messages. The
rule names every violation's field; intake's checks (which call it) say exactly the same about
the same attachments, and live help checks the shape of what a client sent before the rule."""

from __future__ import annotations

from typing import Any

import pytest

from appeals import attachments as rule
from appeals.v1 import appeal_pb2
from appeals_runtime.errors import ValidationFailed
from services.help.chats import attachments_from
from services.intake import validation as intake_validation

PNG = {"media_type": "image/png", "uri": "https://cdn.example.org/a.png", "size_bytes": 1000}

CASES: list[tuple[str, list[dict[str, Any]], list[tuple[str, str]]]] = [
    ("none", [], []),
    ("five", [PNG] * 5, []),
    ("the largest", [PNG | {"size_bytes": rule.MAX_ATTACHMENT_BYTES}], []),
    ("six", [PNG] * 6, [("attachments", "at most 5 attachments")]),
    (
        "an unknown type",
        [PNG, PNG | {"media_type": "application/x-msdownload"}],
        [
            (
                "attachments[1].media_type",
                "must be one of application/pdf, image/gif, image/jpeg, image/png, image/webp, "
                "text/plain, video/mp4",
            )
        ],
    ),
    (
        "plain http",
        [PNG | {"uri": "http://cdn.example.org/a.png"}],
        [("attachments[0].uri", "must be an https:// URL of at most 2048 characters")],
    ),
    (
        "a URL too long",
        [PNG | {"uri": "https://" + "a" * 2041}],
        [("attachments[0].uri", "must be an https:// URL of at most 2048 characters")],
    ),
    (
        "empty and too large",
        [PNG | {"size_bytes": 0}, PNG | {"size_bytes": rule.MAX_ATTACHMENT_BYTES + 1}],
        [
            ("attachments[0].size_bytes", "must be between 1 and 52428800 bytes"),
            ("attachments[1].size_bytes", "must be between 1 and 52428800 bytes"),
        ],
    ),
]


@pytest.mark.parametrize(("_name", "given", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_shared_rule_says_what_intake_says(
    _name: str, given: list[dict[str, Any]], expected: list[tuple[str, str]]
) -> None:
    protos = [appeal_pb2.Attachment(**attachment) for attachment in given]
    assert rule.attachment_violations(protos) == expected
    # Intake's check of an answer to a request for information (a valid answer: only the
    # attachments are judged) names the same fields for the same reasons.
    by_intake = intake_validation.information_violations("the answer", protos)
    assert [(v.field, v.description) for v in by_intake] == expected


@pytest.mark.parametrize(("_name", "given", "expected"), CASES, ids=[c[0] for c in CASES])
def test_live_help_takes_and_refuses_what_the_rule_does(
    _name: str, given: list[dict[str, Any]], expected: list[tuple[str, str]]
) -> None:
    if not expected:
        assert attachments_from(given) == given
        return
    with pytest.raises(ValidationFailed) as refused:
        attachments_from(given)
    # A flood is refused for its count alone, without looking at each.
    assert [(v.field, v.description) for v in refused.value.violations] == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("a.png", [("attachments", "a list of attachments")]),
        (["a.png"], [("attachments[0]", "an object {media_type, uri, size_bytes}")]),
        (
            [{"media_type": "image/png"}],
            [
                ("attachments[0].uri", "is required: a string"),
                ("attachments[0].size_bytes", "is required: an integer"),
            ],
        ),
        (
            [PNG | {"size_bytes": "1000", "colour": "red"}],
            [
                ("attachments[0].colour", "not a field of an attachment"),
                ("attachments[0].size_bytes", "is required: an integer"),
            ],
        ),
        ([PNG | {"size_bytes": True}], [("attachments[0].size_bytes", "is required: an integer")]),
        # JSON can spell a lone surrogate; no store or answer can carry one.
        (
            [PNG | {"uri": "https://a.example/\ud800"}],
            [("attachments[0].uri", "must be UTF-8 text")],
        ),
        # Beyond int64: out of the rule's range, as the rule says (not an overflow).
        (
            [PNG | {"size_bytes": 2**80}],
            [("attachments[0].size_bytes", "must be between 1 and 52428800 bytes")],
        ),
        ([PNG] * 1000, [("attachments", "at most 5 attachments")]),
    ],
)
def test_live_help_names_each_malformed_field(given: Any, expected: list[tuple[str, str]]) -> None:
    with pytest.raises(ValidationFailed) as refused:
        attachments_from(given)
    assert [(v.field, v.description) for v in refused.value.violations] == expected


def test_no_attachments_is_none() -> None:
    assert attachments_from(None) == []
