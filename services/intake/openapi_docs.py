"""What the OpenAPI document says about intake's operations: examples and every answer.

Kept apart from the routes so the routes stay readable; `make openapi` writes the document to
services/intake/openapi.json (a test fails when that file is stale).
"""

from __future__ import annotations

from typing import Any

EXAMPLE_ID = "ap_3f0c2a9d41b7e8c5a6d2f19e0b"
EXAMPLE_APPEAL: dict[str, Any] = {
    "platform": "instagram",
    "appellant": {"user_id": "17841400000000001"},
    "subject": {"kind": "post", "id": "3141592653589793", "content_date": "2026-11-19"},
    "decision": {
        "id": "dec-8f2c",
        "policy": "hate_speech",
        "action": "removed",
        "automated": True,
        "decided_at": "2026-11-20T10:00:00Z",
        "decided_by": "classifier:hate-speech-v7",
    },
    "statement": "This was a quote from a news article, not hate speech.",
    "locale": "de-DE",
    "country": "DE",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "invalid_params": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "reason"],
                "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "open_appeal_id": {"type": "string"},
    },
}


def _problem(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA, "example": example}},
    }


def _p(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}


UNAUTHENTICATED = _problem(
    "No token, or one that does not verify.",
    _p(401, "Unauthenticated", "missing Authorization: Bearer <token>"),
)
FORBIDDEN = _problem(
    "The token does not allow this action on this object.",
    _p(403, "Forbidden", "token is not scoped to platform 'whatsapp'"),
)
INVALID = _problem(
    "Invalid fields, each named.",
    _p(400, "Invalid request", "The request has invalid fields.",
       invalid_params=[{"name": "locale", "reason": "must be a BCP 47 language tag (e.g. de-DE)"}]),
)  # fmt: skip
UNSUPPORTED = _problem(
    "The body is declared in a charset other than UTF-8 (JSON is UTF-8: RFC 8259 §8.1).",
    _p(415, "Unsupported media type", "JSON bodies are UTF-8 (RFC 8259 §8.1), not utf-16"),
)
UNAVAILABLE = _problem(
    "The broker or store did not answer in time; nothing was accepted. Retry with the same key.",
    _p(503, "Service unavailable", "broker did not acknowledge a record. Retry later."),
)

SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the broker acknowledged the appeal.",
        "content": {
            "application/json": {"example": {"appeal_id": EXAMPLE_ID, "status": "received"}}
        },
    },
    400: INVALID,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    409: _problem(
        "Another request with this key is in flight, or an appeal about this item is open.",
        _p(409, "Conflict", "appeal ap_… about this item is still open",
           code="appeal_already_open", open_appeal_id=EXAMPLE_ID),
    ),
    413: _problem(
        "The body is larger than allowed.", _p(413, "Payload too large", "at most 65536 bytes")
    ),
    422: _problem(
        "Not eligible (window closed, not appealable) or the key was used for another body.",
        _p(422, "Unprocessable request", "Appeals against this decision were possible until …",
           code="appeal_window_closed"),
    ),
    429: _problem(
        "A rate limit is exhausted; see Retry-After.",
        _p(429, "Too many requests", "too many appeals from this appellant", code="rate_limited"),
    ),
    415: UNSUPPORTED,
    503: UNAVAILABLE,
}  # fmt: skip

GET_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: INVALID,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: _problem("No such appeal.", _p(404, "Not found", "no appeal ap_…")),
    503: UNAVAILABLE,
}

LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: INVALID,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    422: _problem(
        "Not a window this listing serves: empty, or longer than 31 days.",
        _p(422, "Unprocessable", "the window may span at most 31 days", code="window_too_long"),
    ),
    503: UNAVAILABLE,
}

INFORMATION_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the broker has the answer; the case returns to its queue.",
        "content": {
            "application/json": {
                "example": {"appeal_id": EXAMPLE_ID, "answered_request": "3f1c9b7e2a4d"}
            }
        },
    },
    400: INVALID,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: _problem("No such appeal.", _p(404, "Not found", "no appeal ap_…")),
    409: _problem(
        "No request for information is open (never asked, answered, or its window ended).",
        _p(409, "Conflict", "appeal ap_… is not waiting for information (status routed)",
           code="not_awaiting_information"),
    ),
    413: _problem(
        "The body is larger than allowed.", _p(413, "Payload too large", "at most 65536 bytes")
    ),
    415: UNSUPPORTED,
    503: UNAVAILABLE,
}  # fmt: skip

EVASION_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: INVALID,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    415: UNSUPPORTED,
    503: UNAVAILABLE,
}

ERASURE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "Done: what intake kept about the person is erased and the pseudonym on their "
            "appeals' events names no one any more. The same answer, with 0, for a person intake "
            "does not know or forgot already."
        ),
        "content": {
            "application/json": {
                "example": {
                    "erasure_id": "er_5b0e7c1d9a2f4e6b8c3d1a07",
                    "appeals_erased": 2,
                    "erased_at": "2026-12-06T10:15:00Z",
                }
            }
        },
    },
    400: INVALID,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    415: UNSUPPORTED,
    503: UNAVAILABLE,
}
