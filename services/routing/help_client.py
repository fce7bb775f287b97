"""The help service's internal chat API as routing calls it (the help service owns every chat:
its state, its transcript and who is assigned to it; routing relays an agent's side).

Help's answers become the pipeline's typed errors, so the desk maps them like its own: a 409
``chat_taken`` / ``chat_closed`` is a :class:`Conflict` (FAILED_PRECONDITION, with the code in
the detail), ``not_assigned_to_you`` is :class:`PermissionDenied`, 404 :class:`NotFound`, a
refused request :class:`ValidationFailed`, and help unreachable (or refusing routing's own
credentials, which no retry by the agent can fix but which is no fault of theirs either)
:class:`TransientError`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from appeals_runtime.auth import PermissionDenied
from appeals_runtime.errors import (
    Conflict,
    FieldViolation,
    NotFound,
    TransientError,
    ValidationFailed,
)
from appeals_runtime.http import problem_body
from appeals_runtime.intake_client import ServiceToken

NOT_ASSIGNED = "not_assigned_to_you"
# Help holds a long poll at most this long (its wait_s is 0..25).
MAX_WAIT_S = 25
# How long a plain call may take, beyond a long poll's own wait.
CALL_TIMEOUT_S = 10.0


class HelpUnavailable(TransientError):  # noqa: N818 - reads naturally at raise sites
    """Help did not answer now (down, slow, or refused routing's credentials)."""


class HelpChats:
    """Calls ``{base_url}/internal/v1/chats/...`` with routing's relay token (role service,
    scope ``chats:relay``), re-read whenever its file changes."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, token: ServiceToken) -> None:
        self._http = http
        self._base = f"{base_url.rstrip('/')}/internal/v1/chats"
        self._token = token

    async def state(self, chat_id: str) -> dict[str, Any]:
        return await self._call("GET", chat_id, "")

    async def assign(self, chat_id: str, agent_id: str) -> dict[str, Any]:
        return await self._call("POST", chat_id, "/assignment", json={"agent_id": agent_id})

    async def hand_over(
        self, chat_id: str, agent_id: str, reason: str, to_agent_id: str = ""
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"agent_id": agent_id, "reason": reason}
        if to_agent_id:
            body["to_agent_id"] = to_agent_id
        return await self._call("POST", chat_id, "/handover", json=body)

    async def close(self, chat_id: str, agent_id: str, resolution: str) -> dict[str, Any]:
        body = {"agent_id": agent_id, "resolution": resolution}
        return await self._call("POST", chat_id, "/close", json=body)

    async def updates(
        self, chat_id: str, agent_id: str, after: int, wait_s: float
    ) -> dict[str, Any]:
        """What is new after ``after`` (help answers at once when there is something, else
        after ``wait_s``)."""
        wait = max(0, min(MAX_WAIT_S, int(wait_s)))
        return await self._call(
            "GET",
            chat_id,
            "/updates",
            params={"agent_id": agent_id, "after": after, "wait_s": wait},
            timeout_s=wait + CALL_TIMEOUT_S,
        )

    async def send(self, chat_id: str, agent_id: str, client_id: str, text: str) -> dict[str, Any]:
        body = {"agent_id": agent_id, "client_id": client_id, "text": text}
        return await self._call("POST", chat_id, "/messages", json=body)

    async def receipts(
        self,
        chat_id: str,
        agent_id: str,
        *,
        typing: bool | None = None,
        read_up_to: int | None = None,
    ) -> None:
        body: dict[str, Any] = {"agent_id": agent_id}
        if typing is not None:
            body["typing"] = typing
        if read_up_to is not None:
            body["read_up_to"] = read_up_to
        await self._call("POST", chat_id, "/receipts", json=body)

    async def _call(
        self,
        method: str,
        chat_id: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> dict[str, Any]:
        url = f"{self._base}/{quote(chat_id, safe='')}{path}"
        try:
            response = await self._http.request(
                method,
                url,
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {self._token.current()}"},
                timeout=timeout_s,
            )
        except (httpx.HTTPError, OSError) as error:
            raise HelpUnavailable(f"live help did not answer: {error!r}") from error
        if response.status_code in (200, 201):
            body = response.json()
            return body if isinstance(body, dict) else {}
        if response.status_code == 204:
            return {}
        raise _failure(response)


def _failure(response: httpx.Response) -> Exception:
    problem = problem_body(response)
    detail = str(problem.get("detail") or response.text[:200] or response.reason_phrase)
    code = str(problem.get("code") or "")
    status = response.status_code
    if status == 409 and code == NOT_ASSIGNED:
        return PermissionDenied(f"{code}: {detail}")
    if status == 409:
        return Conflict(f"{code}: {detail}" if code else detail, code=code or None)
    if status == 404:
        return NotFound(detail)
    if status in (400, 422):
        params = problem.get("invalid_params") or []
        violations = [
            FieldViolation(str(p.get("name", "request")), str(p.get("reason", detail)))
            for p in params
            if isinstance(p, dict)
        ]
        return ValidationFailed(violations or [FieldViolation("request", detail)])
    # 401/403: routing's relay token is missing, expired or lacks chats:relay (an operator's
    # problem, logged by help); 5xx and anything else: help cannot serve now.
    return HelpUnavailable(f"live help answered {status}: {detail}")
