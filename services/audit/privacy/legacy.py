"""Events in the layout from before intake became the only holder of personal data. Pure.

Until then ``AppealSubmitted`` and ``CasePackage`` carried the whole ``AppealSubmission`` as
field 1 (now reserved). The log's entries are immutable, so those written then still hold it
(redacted, the personal part sealed), and a producer not yet upgraded may still send it. The
generated code no longer knows field 1; it survives as an unknown field, and is read here.
"""

from __future__ import annotations

from google.protobuf.unknown_fields import UnknownFieldSet

from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2, events_pb2

# AppealSubmitted.submission and CasePackage.submission, both field 1, both reserved now.
LEGACY_SUBMISSION_FIELD = 1
_LENGTH_DELIMITED = 2

Carrier = events_pb2.AppealSubmitted | events_pb2.CasePackage


def legacy_submission(message: Carrier) -> appeal_pb2.AppealSubmission | None:
    """The submission a message in the old layout carries; None for today's messages."""
    unknown = UnknownFieldSet(message)
    for index in range(len(unknown)):
        field = unknown[index]
        if field.field_number == LEGACY_SUBMISSION_FIELD and field.wire_type == _LENGTH_DELIMITED:
            return appeal_pb2.AppealSubmission.FromString(field.data)
    return None


def facts_of(message: Carrier) -> appeal_pb2.SubmissionFacts:
    """A submitted event's (or case package's) facts, whichever layout it was written in."""
    if message.HasField("facts"):
        return message.facts
    legacy = legacy_submission(message)
    return submission_facts(legacy) if legacy is not None else message.facts
