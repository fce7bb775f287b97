"""Signing webhook deliveries, and checking a signature as a receiving surface should. Pure.

The header reads ``X-Appeals-Signature: t=<unix seconds>,v1=<hex>`` where the hex is
HMAC-SHA256 with the shared secret over ``"<t>.<raw body>"``. Signing the timestamp with the body
lets a receiver refuse a captured request replayed later: it accepts only signatures whose ``t``
is within its tolerance of its own clock (5 minutes by default), and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Appeals-Signature"
DELIVERY_HEADER = "X-Appeals-Delivery"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


class InvalidSignature(Exception):  # noqa: N818 - reads naturally at raise sites
    pass


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"


def verify(
    secret: bytes,
    header: str,
    body: bytes,
    *,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> int:
    """Check ``header`` against ``body``; return the signed timestamp or raise
    :class:`InvalidSignature`. Several ``v1=`` entries are allowed (secret rotation)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature("signature header lacks t= or v1=")
    if abs(now - timestamp) > tolerance_s:
        raise InvalidSignature("signature timestamp outside the replay window")
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise InvalidSignature("signature does not match the body")
    return timestamp
