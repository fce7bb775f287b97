"""Appeals as surfaces submit them: REST bodies (``valid_body``; ``fresh_body`` for intake run
in-process; ``appeal_body`` for the running pipeline) and ``submission_proto``, the same appeal as
the protobuf a gRPC call or a Kafka request carries."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from appeals import vocabulary
from appeals.v1 import appeal_pb2
from services.intake import openapi_docs

STATEMENT = "This was a quote from a news article, not hate speech."


def valid_body() -> dict[str, object]:
    """The example the OpenAPI document shows (the issue's example), as a fresh copy."""
    return copy.deepcopy(openapi_docs.EXAMPLE_APPEAL)


def fresh_body(**changes: Any) -> dict[str, Any]:
    """A valid appeal about a new item by a new appellant, so tests never share open slots."""
    body = valid_body() | {
        "appellant": {"user_id": uuid.uuid4().hex[:16]},
        "subject": {"kind": "post", "id": uuid.uuid4().hex[:16]},
    }
    body["decision"] = dict(body["decision"]) | {"decided_at": datetime.now(UTC).isoformat()}  # type: ignore[call-overload]
    return body | changes


def appeal_body(platform: str, *, locale: str = "en-US", kind: str = "post") -> dict[str, Any]:
    return {
        "platform": platform,
        "appellant": {"user_id": str(uuid.uuid4().int)[:17]},
        "subject": {"kind": kind, "id": str(uuid.uuid4().int)[:16]},
        "decision": {
            "id": f"dec-{uuid.uuid4().hex[:6]}",
            "policy": "hate_speech",
            "action": "removed",
            "automated": True,
            "decided_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
            "decided_by": "classifier:hate-speech-v7",
        },
        "statement": STATEMENT,
        "locale": locale,
        "country": locale.rsplit("-", maxsplit=1)[-1],
    }


def submission_proto(body: dict[str, Any]) -> appeal_pb2.AppealSubmission:
    submission = appeal_pb2.AppealSubmission(
        platform=vocabulary.PLATFORMS[body["platform"]],  # type: ignore[arg-type]
        appellant=appeal_pb2.Appellant(user_id=body["appellant"]["user_id"]),
        subject=appeal_pb2.Subject(
            kind=vocabulary.SUBJECT_KINDS[body["subject"]["kind"]],  # type: ignore[arg-type]
            id=body["subject"]["id"],
        ),
        decision=appeal_pb2.OriginalDecision(
            id=body["decision"]["id"],
            policy=body["decision"]["policy"],
            action=body["decision"]["action"],
            automated=body["decision"]["automated"],
            decided_by=body["decision"]["decided_by"],
        ),
        statement=body["statement"],
        locale=body["locale"],
        country=body["country"],
    )
    submission.decision.decided_at.FromJsonString(
        datetime.fromisoformat(body["decision"]["decided_at"]).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    if "contact" in body["appellant"]:
        submission.appellant.contact.CopyFrom(appeal_pb2.Contact(**body["appellant"]["contact"]))
    submission.attachments.extend(appeal_pb2.Attachment(**a) for a in body.get("attachments", []))
    return submission
