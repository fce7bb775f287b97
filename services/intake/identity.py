"""Deterministic identities of appeals and their first event.

The appeal id is derived from (surface, idempotency key): a retry of the same request — even one
that arrives after intake crashed between the broker's acknowledgement and recording the answer —
lands on the same appeal id and the same submitted event id, which every consumer deduplicates.
"""

from __future__ import annotations

import hashlib

from appeals.v1 import appeal_pb2
from appeals_runtime.events import derived_event_id


def idempotency_scope(surface: str, key: str) -> str:
    """Keys are per surface: two surfaces may use the same key for different requests."""
    return f"{surface}\x1f{key}"


def appeal_id_for(scope: str) -> str:
    return "ap_" + hashlib.sha256(scope.encode()).hexdigest()[:26]


def submitted_event_id(appeal_id: str) -> str:
    return derived_event_id(appeal_id, "submitted")


def fingerprint(submission: appeal_pb2.AppealSubmission) -> str:
    """Identifies the request body, to tell a retry from a different request reusing a key."""
    return hashlib.sha256(submission.SerializeToString(deterministic=True)).hexdigest()
