"""Per-person data keys and their erasure (``audit_subject_keys``).

One document per person (pseudonym), ``_id`` = the pseudonym: either the person's data key,
wrapped under the key-encryption key (sealing.py), or, once they asked to be forgotten, a
tombstone. Erasing deletes the key, which crypto-shreds everything sealed for them; the tombstone
makes sure an old event of theirs delivered again is logged without personal data rather than
under a fresh key.

Creating a key is an insert (the cheap operation on every store, see repository.py): a person
seen for the first time costs no read; only a returning or erased person's insert is refused and
their document read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from appeals_runtime import store
from services.audit.privacy import sealing

SUBJECT_KEYS = "audit_subject_keys"
INDEXES: list[store.IndexSpec] = []  # read by _id only
MAX_ERASE_ATTEMPTS = 10


class KeyRepository:
    def __init__(self, db: store.Database, secrets: sealing.Secrets) -> None:
        self._keys = db[SUBJECT_KEYS]
        self._secrets = secrets

    @property
    def secrets(self) -> sealing.Secrets:
        return self._secrets

    async def key_for_sealing(self, subject: str) -> bytes | None:
        """The subject's data key, created on first use; None once the subject was erased."""
        data_key = sealing.new_data_key()
        wrapped = sealing.wrap_key(self._secrets, data_key, subject=subject)
        document = {"_id": subject, "wrapped": wrapped, "created_at": datetime.now(UTC)}
        if await store.insert_once(self._keys, document):
            return data_key
        # A returning person (or another instance was first): theirs is the one everyone uses.
        return await self.key(subject)

    async def key(self, subject: str) -> bytes | None:
        found = await store.available(self._keys.find_one({"_id": subject}))
        if found is None or "wrapped" not in found:
            return None
        return sealing.unwrap_key(self._secrets, found["wrapped"], subject=subject)

    async def erased(self, subject: str) -> bool:
        found = await store.available(self._keys.find_one({"_id": subject}, {"erased_at": 1}))
        return found is not None and "erased_at" in found

    async def erase(self, subject: str, *, requested_by: str) -> bool:
        """Shred the subject's data key and leave a tombstone; False when no key was left."""
        shredded = False
        tombstone = {"_id": subject, "erased_at": datetime.now(UTC), "requested_by": requested_by}
        for _ in range(MAX_ERASE_ATTEMPTS):
            if await self.erased(subject):
                return shredded
            result = await store.available(
                self._keys.delete_one({"_id": subject, "wrapped": {"$exists": True}})
            )
            shredded = shredded or result.deleted_count > 0
            # A sealing racing us may have created a fresh key in between: go round again.
            if await store.insert_once(self._keys, dict(tombstone)):
                return shredded
        raise RuntimeError(f"could not erase {subject}: its key keeps being recreated")
