"""Who may read through audit's HTTP API: FastAPI dependencies shared by its routers.

Ops and auditor tokens read the log (trails, proofs, exports, reports; the ops page's search
is a trail read with the searcher's own token), with the ``audit:read`` scope; only ops make a
checkpoint on demand, reconcile the log with intake (whose records are read with the caller's own
token) and shred a person's key. Callers are verified by ``appeals_runtime.http.authenticated``
(the app keeps its verifier in ``app.state.verifier``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from appeals_runtime.auth import PermissionDenied, Principal, Role, Scope, with_article
from appeals_runtime.http import authenticated
from services.audit.service import Reader


async def _reader(principal: Annotated[Principal, Depends(authenticated)]) -> Reader:
    """The verified ops or auditor caller with ``audit:read``."""
    if principal.role not in (Role.OPS, Role.AUDITOR):
        raise PermissionDenied(
            "the audit log is read with an ops or auditor token, "
            f"not {with_article(principal.role)} token"
        )
    principal.require(Scope.READ_AUDIT)
    return Reader(principal.subject, principal.role.value)


async def _operator(principal: Annotated[Principal, Depends(authenticated)]) -> Reader:
    """The verified ops caller with ``audit:read``: what changes the log's state or reaches
    beyond it (a checkpoint on demand, reconciliation, erasure) is ops' to do, not an
    auditor's."""
    principal.require(Scope.READ_AUDIT, role=Role.OPS)
    return Reader(principal.subject, principal.role.value)


# A reader of the audit log (ops or auditor).
Caller = Annotated[Reader, Depends(_reader)]
# An operator of the audit log (ops).
Operator = Annotated[Reader, Depends(_operator)]
