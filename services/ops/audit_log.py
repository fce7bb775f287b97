"""The audit service's REST API as the ops page's search reads it: an appeal's trail.

The search is a read of the audit log, so it goes through the log's own front door with the
searching person's own token: the audit service decides who may read (ops or auditor with
``audit:read``) and records the read under that person's name before answering, as for every
other read. The ops service holds no credentials of its own for the log.
"""

from __future__ import annotations

from typing import Any

import httpx

from appeals_runtime.auth import PermissionDenied, Unauthenticated
from appeals_runtime.errors import NotFound, TransientError
from appeals_runtime.http import problem_detail

TIMEOUT_S = 5.0


class AuditTrails:
    def __init__(self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=TIMEOUT_S, transport=transport
        )

    async def trail(self, appeal_id: str, authorization: str) -> dict[str, Any]:
        """The appeal's trail as audit's ``GET /v1/appeals/{id}/trail`` answers it."""
        try:
            response = await self._client.get(
                f"/v1/appeals/{appeal_id}/trail", headers={"Authorization": authorization}
            )
        except httpx.HTTPError as error:
            raise TransientError(
                f"the audit log at {self.base_url} did not answer: {error}"
            ) from error
        detail = problem_detail(response)
        if response.status_code == 404:
            raise NotFound(detail or f"the audit log has no entries for appeal {appeal_id!r}")
        if response.status_code == 401:
            raise Unauthenticated(detail or "the audit log refused the token")
        if response.status_code == 403:
            raise PermissionDenied(detail or "the audit log refused this reader")
        if response.status_code != 200:
            raise TransientError(
                f"the audit log answered {response.status_code}: {detail or response.text[:200]}"
            )
        trail: dict[str, Any] = response.json()
        return trail

    async def close(self) -> None:
        await self._client.aclose()
