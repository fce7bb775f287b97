"""Live-help chats in the store: every read and write by ``_id``; transcripts encrypted per person.

FerretDB runs an update as a read and a separate write, so whatever must happen once (a message
at a seq, a message's client id, an agent taking a chat, a hand-over, the close, the first
answer) is an insert under a unique ``_id`` (:func:`store.insert_once`); the chat document is a
projection of those facts for reading, updated after each of them.

* ``help_chats``, ``_id`` = chat id: state, platform, topic, language, appeal, agent, times,
  resolution; the person only as a keyed digest (never a user id) and the session that opened it;
* ``help_chat_messages``, ``_id`` = ``<chat id>:<seq, 10 digits>``, write-once: the next seq is
  the first free one (insert; on a duplicate key, the next), so seqs have no gaps and a client
  resumes with ``after=<last seq it holds>``. The text is AES-GCM-encrypted with the person's key
  (a fresh nonce per message; ``<chat id>:<seq>`` as associated data, so a ciphertext cannot be
  moved to another message);
* ``help_chat_client_ids``, ``_id`` = ``<chat id>:c:<client id>``, write-once: which seq a
  sender's message got, so a resent message is stored once;
* ``help_chat_claims``, write-once: ``<chat id>:a:<n>`` (the agent of the n-th assignment; n
  counts hand-overs), ``<chat id>:h:<n>`` (its hand-over), ``<chat id>:closed``,
  ``<chat id>:first_answer``: whoever inserts first wins;
* ``help_chat_receipts``, ``_id`` = chat id: delivered / read seqs and typing times of each side
  (monotonic hints: a lost concurrent update costs a receipt a moment, nothing else);
* ``help_chat_open``, ``_id`` = session id: the session's open chat (a second open answers it);
* ``help_chat_keys``, ``_id`` = person digest: the person's 256-bit data key, wrapped (AES-GCM
  under a key derived from the help secret). Deleting it (:meth:`ChatRepository.forget_person`)
  erases every transcript of the person at once (crypto-erasure): its messages read "[erased]".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appeals_runtime import store

CHATS = "help_chats"
MESSAGES = "help_chat_messages"
CLIENT_IDS = "help_chat_client_ids"
CLAIMS = "help_chat_claims"
RECEIPTS = "help_chat_receipts"
OPEN_CHATS = "help_chat_open"
PERSON_KEYS = "help_chat_keys"

ERASED = "[erased]"
NONCE_BYTES = 12
# A page of messages: the most one read returns.
PAGE = 100


def message_id(chat_id: str, seq: int) -> str:
    return f"{chat_id}:{seq:010d}"


@dataclass(frozen=True)
class StoredMessage:
    chat_id: str
    seq: int
    party: str
    text: str
    sent_at: datetime
    client_id: str
    agent_id: str


class ChatRepository:
    def __init__(self, db: store.Database, wrapping: bytes) -> None:
        """``wrapping``: the key that wraps persons' data keys (``Keys.transcripts``)."""
        self._chats = db[CHATS]
        self._messages = db[MESSAGES]
        self._client_ids = db[CLIENT_IDS]
        self._claims = db[CLAIMS]
        self._receipts = db[RECEIPTS]
        self._open = db[OPEN_CHATS]
        self._keys = db[PERSON_KEYS]
        self._wrapping = AESGCM(wrapping)

    # --- chats ---------------------------------------------------------------------------------

    async def insert_chat(self, document: store.Document) -> bool:
        return await store.insert_once(self._chats, document)

    async def chat(self, chat_id: str) -> store.Document | None:
        return await store.available(self._chats.find_one({"_id": chat_id}))

    async def update_chat(
        self, chat_id: str, changes: dict[str, Any], *, expect: dict[str, Any] | None = None
    ) -> bool:
        """Set ``changes`` on the chat (only while it matches ``expect``); False when it did
        not match."""
        result = await store.available(
            self._chats.update_one({"_id": chat_id, **(expect or {})}, {"$set": changes})
        )
        return bool(result.matched_count)

    async def delete_chat(self, chat_id: str) -> None:
        await store.available(self._chats.delete_one({"_id": chat_id}))

    # --- the session's open chat ---------------------------------------------------------------

    async def claim_open(self, session_id: str, chat_id: str, now: datetime) -> bool:
        return await store.insert_once(
            self._open, {"_id": session_id, "chat_id": chat_id, "at": now}
        )

    async def open_chat_of(self, session_id: str) -> str | None:
        found = await store.available(self._open.find_one({"_id": session_id}))
        return str(found["chat_id"]) if found else None

    async def release_open(self, session_id: str, chat_id: str) -> None:
        await store.available(self._open.delete_one({"_id": session_id, "chat_id": chat_id}))

    # --- write-once claims ---------------------------------------------------------------------

    async def claim(self, claim_id: str, **facts: Any) -> bool:
        return await store.insert_once(self._claims, {"_id": claim_id, **facts})

    async def claimed(self, claim_id: str) -> store.Document | None:
        return await store.available(self._claims.find_one({"_id": claim_id}))

    # --- receipts ------------------------------------------------------------------------------

    async def receipts(self, chat_id: str) -> store.Document:
        return await store.available(self._receipts.find_one({"_id": chat_id})) or {}

    async def note_receipt(
        self, chat_id: str, *, highest: dict[str, int], times: dict[str, datetime]
    ) -> None:
        update: dict[str, Any] = {}
        if highest:
            update["$max"] = highest
        if times:
            update["$set"] = times
        if update:
            await store.available(self._receipts.update_one({"_id": chat_id}, update, upsert=True))

    # --- person keys ---------------------------------------------------------------------------

    async def person_key(self, person: str, *, create: bool) -> bytes | None:
        """The person's data key; a new one when they have none and ``create`` (concurrent
        creators agree: the first insert wins and the others read it)."""
        for _ in range(2):
            found = await store.available(self._keys.find_one({"_id": person}))
            if found is not None:
                nonce, wrapped = bytes(found["nonce"]), bytes(found["wrapped"])
                return self._wrapping.decrypt(nonce, wrapped, person.encode())
            if not create:
                return None
            key = AESGCM.generate_key(bit_length=256)
            nonce = secrets.token_bytes(NONCE_BYTES)
            wrapped = self._wrapping.encrypt(nonce, key, person.encode())
            if await store.insert_once(
                self._keys, {"_id": person, "nonce": nonce, "wrapped": wrapped}
            ):
                return key
        raise RuntimeError("a person's key was created and deleted at once")

    async def forget_person(self, person: str) -> bool:
        result = await store.available(self._keys.delete_one({"_id": person}))
        return bool(result.deleted_count)

    # --- messages ------------------------------------------------------------------------------

    async def append(
        self,
        chat_id: str,
        key: bytes,
        *,
        first_seq: int,
        party: str,
        text: str,
        sent_at: datetime,
        client_id: str,
        agent_id: str,
    ) -> StoredMessage:
        """Store a message at the first free seq from ``first_seq`` on (a hint no higher than the
        last seq taken); write-once, so two writers never share a seq and none is skipped."""
        cipher = AESGCM(key)
        seq = max(1, first_seq)
        while True:
            nonce = secrets.token_bytes(NONCE_BYTES)
            document = {
                "_id": message_id(chat_id, seq),
                "party": party,
                "nonce": nonce,
                "text": cipher.encrypt(nonce, text.encode(), f"{chat_id}:{seq}".encode()),
                "sent_at": sent_at,
                "client_id": client_id,
                "agent_id": agent_id,
            }
            if await store.insert_once(self._messages, document):
                return StoredMessage(chat_id, seq, party, text, sent_at, client_id, agent_id)
            seq += 1

    async def messages(
        self, chat_id: str, key: bytes | None, after: int, limit: int = PAGE
    ) -> list[StoredMessage]:
        """The messages after seq ``after``, ascending, at most ``limit``: read by their ids."""
        ids = [message_id(chat_id, seq) for seq in range(after + 1, after + 1 + limit)]
        documents = await store.available(self._messages.find({"_id": {"$in": ids}}).to_list(None))
        found = {doc["_id"]: doc for doc in documents}
        messages = []
        for seq, wanted in enumerate(ids, start=after + 1):
            doc = found.get(wanted)
            if doc is None:
                break  # seqs have no gaps: nothing after a missing one either
            messages.append(self._decrypted(chat_id, seq, doc, key))
        return messages

    async def has_message(self, chat_id: str, seq: int) -> bool:
        found = await store.available(
            self._messages.find_one({"_id": message_id(chat_id, seq)}, {"_id": 1})
        )
        return found is not None

    async def message(self, chat_id: str, seq: int, key: bytes | None) -> StoredMessage | None:
        doc = await store.available(self._messages.find_one({"_id": message_id(chat_id, seq)}))
        return self._decrypted(chat_id, seq, doc, key) if doc else None

    def _decrypted(
        self, chat_id: str, seq: int, doc: store.Document, key: bytes | None
    ) -> StoredMessage:
        text = ERASED
        if key is not None:
            try:
                text = (
                    AESGCM(key)
                    .decrypt(bytes(doc["nonce"]), bytes(doc["text"]), f"{chat_id}:{seq}".encode())
                    .decode()
                )
            except InvalidTag:
                # Written under a key since erased (the person was forgotten, then came back).
                text = ERASED
        return StoredMessage(
            chat_id, seq, doc["party"], text, doc["sent_at"], doc["client_id"], doc["agent_id"]
        )

    # --- client ids ----------------------------------------------------------------------------

    async def claim_client_id(self, chat_id: str, client_id: str, now: datetime) -> bool:
        return await store.insert_once(
            self._client_ids, {"_id": f"{chat_id}:c:{client_id}", "seq": 0, "at": now}
        )

    async def client_id_seq(self, chat_id: str, client_id: str) -> store.Document | None:
        return await store.available(self._client_ids.find_one({"_id": f"{chat_id}:c:{client_id}"}))

    async def note_client_id_seq(self, chat_id: str, client_id: str, seq: int) -> None:
        await store.available(
            self._client_ids.update_one({"_id": f"{chat_id}:c:{client_id}"}, {"$set": {"seq": seq}})
        )

    async def note_last_seq(self, chat_id: str, seq: int) -> None:
        """Where the next message's seq search starts (a hint: never above the last seq)."""
        await store.available(self._chats.update_one({"_id": chat_id}, {"$max": {"last_seq": seq}}))
