"""Notifications' code-sending API as the help service calls it (the pipeline's only sender)."""

from __future__ import annotations

from datetime import datetime

import httpx

from appeals_runtime.errors import TransientError
from appeals_runtime.http import problem_detail
from services.help.accounts import Account, Contact


class CodeRefused(Exception):  # noqa: N818 - an outcome: this contact cannot get the code
    pass


class CodeMessenger:
    def __init__(self, http: httpx.AsyncClient, base_url: str, token: str) -> None:
        self._http = http
        self._url = f"{base_url.rstrip('/')}/v1/verification-codes"
        self._token = token

    async def send(
        self, request_id: str, account: Account, contact: Contact, code: str, expires_at: datetime
    ) -> str:
        """Have notifications send ``code`` to ``contact``; the channel it went on.
        :class:`CodeRefused` when no channel reaches the contact (try the next one),
        :class:`TransientError` when notifications cannot send now."""
        body = {
            "request_id": request_id,
            "platform": account.platform,
            "locale": account.locale,
            "to": {"kind": contact.kind, "address": contact.address},
            "code": code,
            "expires_at": expires_at.isoformat(),
        }
        try:
            response = await self._http.post(
                self._url, json=body, headers={"Authorization": f"Bearer {self._token}"}
            )
        except httpx.HTTPError as error:
            raise TransientError(f"notifications did not answer: {error}") from error
        if response.status_code == 200:
            return str(response.json().get("channel", ""))
        said = problem_detail(response) or response.text[:200]
        if response.status_code == 422:
            raise CodeRefused(said)
        raise TransientError(f"notifications answered {response.status_code}: {said}")
