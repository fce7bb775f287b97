"""What a person may attach, wherever they attach it: evidence on an appeal (intake's submit), an
answer to a reviewer's request for information (intake), a message in a live-help chat (help).
One rule in one place, so that every way in accepts and refuses the same attachments.

Attachments are references, never media (no service stores the files): a media type from a
short list, an https:// URL, the size the sender states. The checks are pure and name the field
of each violation as ``(field, description)``; each service wraps them in its own error type
(``appeals_runtime.errors.FieldViolation`` for the REST and gRPC answers), as this library sits
below the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, get_args

MAX_ATTACHMENTS = 5
MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
MAX_URL_CHARS = 2048
# The REST schemas declare the URL rule from this pattern, so the OpenAPI documents say what
# the check below takes.
HTTPS_URL_PATTERN = r"^https://"
# Declared once as a type, so the REST schemas' enums and the check are the same list.
AttachmentType = Literal[
    "image/jpeg", "image/png", "image/webp", "image/gif", "video/mp4", "application/pdf",
    "text/plain",
]  # fmt: skip
ATTACHMENT_TYPES = frozenset(get_args(AttachmentType))


class Attachment(Protocol):
    """What the rule reads of an attachment: ``appeals.v1.Attachment`` has it, and so does any
    parsed form of it."""

    @property
    def media_type(self) -> str: ...

    @property
    def uri(self) -> str: ...

    @property
    def size_bytes(self) -> int: ...


def attachment_violations(
    attachments: Sequence[Attachment], field: str = "attachments"
) -> list[tuple[str, str]]:
    """Every way ``attachments`` break the rule, as (field, description): how many there are,
    and each one's media type, URL and size (``attachments[1].uri``)."""
    return count_violations(len(attachments), field) + [
        violation
        for index, attachment in enumerate(attachments)
        for violation in item_violations(attachment, f"{field}[{index}]")
    ]


def count_violations(count: int, field: str = "attachments") -> list[tuple[str, str]]:
    """Too many attachments (said alone by a caller that will not look at each of a flood)."""
    if count > MAX_ATTACHMENTS:
        return [(field, f"at most {MAX_ATTACHMENTS} attachments")]
    return []


def item_violations(attachment: Attachment, where: str) -> list[tuple[str, str]]:
    """How one attachment, at ``where`` (``attachments[0]``), breaks the rule."""
    violations: list[tuple[str, str]] = []
    if attachment.media_type not in ATTACHMENT_TYPES:
        violations.append(
            (f"{where}.media_type", f"must be one of {', '.join(sorted(ATTACHMENT_TYPES))}")
        )
    if not attachment.uri.startswith("https://") or len(attachment.uri) > MAX_URL_CHARS:
        violations.append(
            (f"{where}.uri", f"must be an https:// URL of at most {MAX_URL_CHARS} characters")
        )
    if not 0 < attachment.size_bytes <= MAX_ATTACHMENT_BYTES:
        violations.append(
            (f"{where}.size_bytes", f"must be between 1 and {MAX_ATTACHMENT_BYTES} bytes")
        )
    return violations
