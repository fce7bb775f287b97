"""Who may read through audit's HTTP API: FastAPI dependencies shared by its routers.

Only ops tokens get in. Reading the log (trails, proofs, exports, the ops page's search) needs the
``audit:read`` scope as well; the ops page's live figures are aggregate metrics, not the log, so
any ops token sees them. Callers are verified by ``appeals_runtime.http.authenticated`` (the
app keeps its verifier in ``app.state.verifier``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from appeals_runtime.auth import PermissionDenied, Principal, Role, Scope
from appeals_runtime.http import authenticated
from services.audit.service import Reader


async def _reader(principal: Annotated[Principal, Depends(authenticated)]) -> Reader:
    """The verified ops caller with ``audit:read``."""
    principal.require(Scope.READ_AUDIT, role=Role.OPS)
    return Reader(principal.subject, principal.role.value)


async def _ops_viewer(principal: Annotated[Principal, Depends(authenticated)]) -> Reader:
    """The verified ops caller, whatever its scopes."""
    if principal.role != Role.OPS:
        raise PermissionDenied(f"the ops page needs an ops token, not a {principal.role} token")
    return Reader(principal.subject, principal.role.value)


# A reader of the audit log.
Caller = Annotated[Reader, Depends(_reader)]
# A viewer of the ops page's figures.
OpsViewer = Annotated[Reader, Depends(_ops_viewer)]
