"""Forgetting a person's live-help transcripts (GDPR Art. 17): crypto-erasure, by deleting the
person's data key (``ChatRepository.forget_person``), so every message of theirs reads
"[erased]" from then on, whoever reads it.

Two ways in:

* intake erased an appellant and announced ``particulars_erased`` for each of their appeals (the
  lifecycle consumer, :mod:`services.help.consumer`): the person of the account-access chats
  attached to that appeal (``help_chat_appeals``, noted when the chat got its appeal) is
  forgotten, then the link. A person without such a chat, or an appeal seen again, is nothing to
  do;
* ``POST /v1/help/erasures`` (:mod:`services.help.erasure_api`) with the platform and user id, as
  intake's ``POST /v1/erasures`` takes them: covers feature-help chats, which have no appeal. A
  surface may erase its platforms' users, ops anyone (intake's rule). The answer says whether
  there was a key to delete and nothing else: no more than intake's count of appeals erased.

Both are idempotent. The transcripts' ciphertexts stay until the retention sweep deletes them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from appeals import vocabulary
from appeals_runtime import store
from appeals_runtime.auth import Principal, Scope
from appeals_runtime.errors import FieldViolation, ValidationFailed
from services.help.chat_repository import ChatRepository

log = logging.getLogger(__name__)

# A user id as intake takes it in an erasure (its submit's rule).
MAX_USER_ID_CHARS = 128
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")


@dataclass(frozen=True)
class PersonErased:
    # Whether the person had a transcript key (deleted now); False when they had none or it
    # was deleted before.
    forgotten: bool
    erased_at: datetime


def erasure_violations(platform: str, user_id: str) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    if platform not in vocabulary.PLATFORMS:
        violations.append(
            FieldViolation("platform", f"must be one of {', '.join(vocabulary.PLATFORMS)}")
        )
    if not user_id:
        violations.append(FieldViolation("user_id", "is required"))
    elif len(user_id) > MAX_USER_ID_CHARS:
        violations.append(
            FieldViolation("user_id", f"must be at most {MAX_USER_ID_CHARS} characters")
        )
    elif not USER_ID.fullmatch(user_id):
        violations.append(
            FieldViolation("user_id", "may contain only letters, digits and _ . : - (no spaces)")
        )
    return violations


class ChatErasures:
    def __init__(
        self,
        repository: ChatRepository,
        person: Callable[[str, str], str],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``person(platform, user_id)``: the digest chats name their person by
        (``Chats.person``)."""
        self._repository = repository
        self._person = person
        self._clock = clock

    async def appeal_erased(self, appeal_id: str) -> bool:
        """Intake erased the appellant of ``appeal_id``: forget the person of the chats attached
        to it. True when a key was deleted now."""
        person = await self._repository.person_of_appeal(appeal_id)
        if person is None:
            return False
        forgotten = await self._repository.forget_person(person)
        # The link last: a retry after a failure in between still finds whom to forget.
        await self._repository.unlink_appeal(appeal_id)
        log.info(
            "live-help person forgotten with an erased appeal",
            extra={"appeal_id": appeal_id, "forgotten": forgotten},
        )
        return forgotten

    async def erase_person(self, principal: Principal, platform: str, user_id: str) -> PersonErased:
        principal.require(Scope.ERASE_PARTICULARS)
        violations = erasure_violations(platform, user_id)
        if violations:
            raise ValidationFailed(violations)
        principal.require_platform(platform)
        forgotten = await self._repository.forget_person(self._person(platform, user_id))
        log.info(
            "live-help person forgotten on request",
            extra={"platform": platform, "forgotten": forgotten,
                   "requested_by": principal.subject},
        )  # fmt: skip
        return PersonErased(forgotten, store.stored_time(self._clock()))
