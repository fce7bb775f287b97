"""Audit's business metrics: declared here, exposed on audit's /metrics."""

from __future__ import annotations

from appeals_runtime.metrics import Kind, counter, declare

AUDIT_APPENDED = declare(
    "appeals.audit.appended", Kind.COUNTER, "{entry}",
    "Events appended to the audit log, by event type",
    ("event_type",),
)  # fmt: skip
AUDIT_CHECKPOINTS = declare(
    "appeals.audit.checkpoints", Kind.COUNTER, "{checkpoint}",
    "Checkpoints signed, and refusals to sign (outcome)",
    ("outcome",),
)  # fmt: skip

appended = counter(AUDIT_APPENDED)
checkpoints = counter(AUDIT_CHECKPOINTS)
