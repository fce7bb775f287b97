"""The only module that touches the store: verifications, each fact its own write-once document.

FerretDB runs an update as a read and a separate write, so two concurrent updates of one document
can both apply to the same old version: an attempt counter kept by updates would let a brute
force through. Every fact is therefore an insert under a unique ``_id`` (``store.insert_once``
turns a duplicate into "already there"), and every read is by ``_id``:

* ``help_verifications``, ``_id`` = verification id: platform, a keyed digest of the account as
  named and of the code, when it was made and when it expires;
* ``help_verification_accounts``, ``_id`` = verification id: the account the code was sent for
  (written only when the account exists, before the code is sent);
* ``help_verification_attempts``, ``_id`` = ``<verification id>/<n>``: the n-th try (0, 1, ...):
  a try takes the first free slot, and none is left after the last one;
* ``help_verification_uses``, ``_id`` = verification id: the code was used (once);
* ``help_expiries``: when each verification expires, in minute buckets
  (:mod:`appeals_runtime.expiries`): once its code expired nothing of a verification is needed
  (a session carries what it needs), so the sweeper deletes all of it, the account reference
  included, in proportion to what expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appeals_runtime import store
from appeals_runtime.expiries import ExpiryIndex
from services.help.accounts import Account

VERIFICATIONS = "help_verifications"
ACCOUNTS = "help_verification_accounts"
ATTEMPTS = "help_verification_attempts"
USES = "help_verification_uses"
EXPIRIES = "help_expiries"

INDEXES: tuple[store.IndexSpec, ...] = ()


@dataclass(frozen=True)
class Verification:
    verification_id: str
    platform: str
    code_digest: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class VerifiedAccount:
    platform: str
    user_id: str
    status: str
    locale: str


class HelpRepository:
    def __init__(self, db: store.Database) -> None:
        self._verifications = db[VERIFICATIONS]
        self._accounts = db[ACCOUNTS]
        self._attempts = db[ATTEMPTS]
        self._uses = db[USES]
        self._expiries = ExpiryIndex(db[EXPIRIES])

    async def save_verification(self, verification: Verification, account_digest: str) -> None:
        self._expiries.note(verification.verification_id, verification.expires_at)
        await store.insert_once(
            self._verifications,
            {
                "_id": verification.verification_id,
                "platform": verification.platform,
                "account_digest": account_digest,
                "code_digest": verification.code_digest,
                "created_at": verification.created_at,
                "expires_at": verification.expires_at,
            },
        )

    async def verification(self, verification_id: str) -> Verification | None:
        found = await store.available(self._verifications.find_one({"_id": verification_id}))
        if found is None:
            return None
        return Verification(
            verification_id=verification_id,
            platform=found["platform"],
            code_digest=found["code_digest"],
            created_at=found["created_at"],
            expires_at=found["expires_at"],
        )

    async def save_account(self, verification_id: str, account: Account) -> bool:
        return await store.insert_once(
            self._accounts,
            {
                "_id": verification_id,
                "platform": account.platform,
                "user_id": account.user_id,
                "status": account.status,
                "locale": account.locale,
            },
        )

    async def account(self, verification_id: str) -> VerifiedAccount | None:
        found = await store.available(self._accounts.find_one({"_id": verification_id}))
        if found is None:
            return None
        return VerifiedAccount(
            found["platform"], found["user_id"], found["status"], found["locale"]
        )

    async def take_attempt(self, verification_id: str, allowed: int, now: datetime) -> int | None:
        """The number (0, 1, ...) of the attempt slot this try took; None when all are taken."""
        for number in range(allowed):
            document = {"_id": f"{verification_id}/{number}", "at": now}
            if await store.insert_once(self._attempts, document):
                return number
        return None

    async def use(self, verification_id: str, now: datetime) -> bool:
        """Mark the code used; False when it had been used already."""
        return await store.insert_once(self._uses, {"_id": verification_id, "at": now})

    async def flush_expiries(self, now: datetime) -> int:
        return await self._expiries.flush(now)

    async def sweep_expired(self, now: datetime, attempts: int) -> int:
        """Delete every fact of the verifications whose codes expired; how many there were."""

        async def delete(ids: list[str]) -> int:
            tries = [f"{vid}/{number}" for vid in ids for number in range(attempts)]
            await store.available(self._attempts.delete_many({"_id": {"$in": tries}}))
            for collection in (self._accounts, self._uses):
                await store.available(collection.delete_many({"_id": {"$in": ids}}))
            result = await store.available(self._verifications.delete_many({"_id": {"$in": ids}}))
            return int(result.deleted_count)

        return await self._expiries.sweep(now, delete)
