"""Identities intake gives out: appeal ids, idempotency scopes, pseudonyms, fingerprints."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from appeals.events import derived_event_id
from appeals.v1 import appeal_pb2


def idempotency_scope(surface: str, key: str) -> str:
    """Keys are per surface: two surfaces may use the same key for different requests."""
    return f"{surface}\x1f{key}"


def new_appeal_id() -> str:
    """Random, not derived from the key: keys expire and may be reused later for a new appeal.
    A retry finds the id in the key's reservation, which is written before anything is sent."""
    return "ap_" + secrets.token_hex(13)


def submitted_event_id(appeal_id: str) -> str:
    return derived_event_id(appeal_id, "submitted")


def info_provided_event_id(appeal_id: str, request_event_id: str) -> str:
    """One answer event per request: a retry republishes the same id."""
    return derived_event_id(appeal_id, "info_provided", request_event_id)


def fingerprint(submission: appeal_pb2.AppealSubmission) -> str:
    """Identifies the request body, to tell a retry from a different request reusing a key."""
    return hashlib.sha256(submission.SerializeToString(deterministic=True)).hexdigest()


def appellant_key(key: bytes, platform: int, user_id: str) -> str:
    """Keyed hash of an appellant: the ``_id`` under which intake keeps their pseudonym. Without
    the key it cannot be reversed or recomputed from a guessed user id."""
    digest = hmac.new(key, f"{platform}\x1f{user_id}".encode(), hashlib.sha256).hexdigest()
    return "apk_" + digest[:32]


def new_pseudonym() -> str:
    """The name every event gives a person: random, not derived from who they are, so that once
    intake forgets whose it is (an erasure) nothing can link it back to them."""
    return "psn_" + secrets.token_hex(16)


def erasure_id() -> str:
    return "er_" + secrets.token_hex(12)


def particulars_erased_event_id(appeal_id: str) -> str:
    """One per appeal, whichever erasure request (or retry) erased it."""
    return derived_event_id(appeal_id, "particulars_erased")


def open_appeal_slot(submission: appeal_pb2.AppealSubmission) -> str:
    """At most one open appeal per (appellant, actioned item): this names the pair."""
    return "\x1f".join(
        (
            str(submission.platform),
            submission.appellant.user_id,
            str(submission.subject.kind),
            submission.subject.id,
        )
    )
