"""Intake's answer to ``GetAppealParticulars``, for tests that drive routing or notifications
alone with submitted events they publish themselves (so no intake ever took those appeals in).

It implements the same :class:`ParticularsSource` the services get in production, answers with
the particulars of the submissions the test registered, and can be switched off to play an intake
that is down. The real RPC (roles, logging, the gRPC client) is tested against the running intake
in ``tests/integration/test_intake_particulars.py`` and end to end.
"""

from __future__ import annotations

from appeals.v1 import appeal_pb2, intake_pb2
from appeals_runtime.errors import NotFound
from appeals_runtime.intake_client import ParticularsUnavailable


class KnownParticulars:
    def __init__(self) -> None:
        self._by_appeal: dict[str, intake_pb2.AppealParticulars] = {}
        # Appeal ids in the order their particulars were read.
        self.reads: list[str] = []
        self.down = False

    def remember(self, appeal_id: str, submission: appeal_pb2.AppealSubmission) -> None:
        self._by_appeal[appeal_id] = intake_pb2.AppealParticulars(
            appeal_id=appeal_id,
            user_id=submission.appellant.user_id,
            contact=submission.appellant.contact,
            statement=submission.statement,
            attachments=submission.attachments,
        )

    def erase(self, appeal_id: str) -> None:
        """Answer as intake does once the appellant asked to be forgotten."""
        self._by_appeal[appeal_id] = intake_pb2.AppealParticulars(appeal_id=appeal_id, erased=True)

    async def get(self, appeal_id: str) -> intake_pb2.AppealParticulars:
        if self.down:
            raise ParticularsUnavailable("intake answered UNAVAILABLE (switched off by the test)")
        if appeal_id not in self._by_appeal:
            raise NotFound(f"intake knows no appeal {appeal_id!r}")
        self.reads.append(appeal_id)
        return self._by_appeal[appeal_id]


# One for the whole session: appeal ids are unique, so tests never see each other's entries.
APPELLANTS = KnownParticulars()
