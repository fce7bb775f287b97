"""What the commands that call a service's API share: times as the APIs take them, and the
service's RFC 9457 problem answers said in a line or a few."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx


def moment(text: str) -> str:
    """An ISO 8601 time as the APIs take it (RFC 3339, UTC when no offset is given)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def problem(response: httpx.Response, service: str) -> str:
    """``service``'s refusal: its status, the problem's detail and every invalid parameter."""
    try:
        body = response.json()
    except ValueError:
        return f"{service} answered {response.status_code}: {response.text[:300]}"
    if not isinstance(body, dict):
        return f"{service} answered {response.status_code}"
    lines = [f"{service} answered {response.status_code}: {body.get('detail', '')}"]
    lines += [f"  {p['name']}: {p['reason']}" for p in body.get("invalid_params", [])]
    return "\n".join(lines)
