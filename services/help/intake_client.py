"""Intake's submit API, as live help uses it: an account-access chat is attached to an appeal of
the account's enforcement decision, submitted as a product surface would (intake's rules and
limits apply; ``HELP_INTAKE_TOKEN_FILE`` holds a surface token of every platform).

The chat id is the Idempotency-Key, so a retried open never submits twice. Intake's 409
``appeal_already_open`` names the open appeal about the account (``open_appeal_id``): the chat
is attached to that one. Intake unreachable, 5xx or refusing help's token: TransientError (503,
the open fails whole); intake refusing the appeal itself (400/422): Unprocessable with intake's
reason.
"""

from __future__ import annotations

from typing import Any

import httpx

from appeals_runtime.errors import TransientError, Unprocessable
from appeals_runtime.http import problem_body, problem_detail
from services.help.accounts import Account


def appeal_body(account: Account) -> dict[str, Any]:
    """The submit body for an appeal of ``account``'s enforcement decision, by its holder."""
    decision = account.decision
    if decision is None:
        raise ValueError("the account has no enforcement decision to appeal")
    return {
        "platform": account.platform,
        "appellant": {"user_id": account.user_id, "role": "affected_user"},
        "subject": {"kind": "account", "id": account.user_id},
        "decision": {
            "id": decision.id,
            "policy": decision.policy,
            "action": decision.action,
            "automated": decision.automated,
            "decided_at": decision.decided_at.isoformat(),
            "decided_by": decision.decided_by,
        },
        "locale": account.locale,
        # "ZZ" (unknown region): intake needs a country; its default appeal window applies.
        "country": account.country or "ZZ",
    }


class IntakeClient:
    def __init__(
        self, http: httpx.AsyncClient, base_url: str, token: str | None, *, timeout_s: float = 5.0
    ) -> None:
        self._http = http
        self._timeout_s = timeout_s
        self._base_url = base_url.rstrip("/")
        self._token = token

    async def submit(self, account: Account, idempotency_key: str) -> str:
        """The id of the appeal the chat is attached to: the one submitted, or the account's
        appeal that is open already."""
        if self._token is None:
            raise TransientError("appeals cannot be opened from live help here (no intake token)")
        try:
            response = await self._http.post(
                f"{self._base_url}/v1/appeals",
                json=appeal_body(account),
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Idempotency-Key": idempotency_key,
                },
                timeout=self._timeout_s,
            )
        except httpx.HTTPError as error:
            raise TransientError(f"intake did not answer: {type(error).__name__}") from error
        if response.status_code in (200, 202):
            return str(response.json()["appeal_id"])
        if response.status_code == 409:
            body = problem_body(response)
            if body.get("code") == "appeal_already_open" and body.get("open_appeal_id"):
                return str(body["open_appeal_id"])
            # request_in_flight and the like: the same key is being answered; retry.
            raise TransientError(
                f"intake is still answering this request: {problem_detail(response)}"
            )
        if response.status_code in (400, 422):
            body = problem_body(response)
            raise Unprocessable(
                f"the appeal could not be opened: {problem_detail(response)}",
                code="appeal_refused",
                intake_code=str(body.get("code") or ""),
            )
        raise TransientError(f"intake answered {response.status_code}")
