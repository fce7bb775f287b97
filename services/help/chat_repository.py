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
  moved to another message). A message's attachments (references: media type, https URL,
  size) are personal data too: encrypted the same way, apart (``<chat id>:<seq>:attachments``).
  A system message saying an appeal's decision carries its ``outcome`` in the clear (the
  lifecycle topic says it too);
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
  erases every transcript of the person at once (crypto-erasure): its messages read "[erased]";
* ``help_chat_appeals``, ``_id`` = appeal id: the person (digest) of the account-access chats
  attached to that appeal, those chats' ids and when the latest of them was requested, so that
  intake's erasure of the appeal (``particulars_erased``) finds whom to forget and its decision
  (``decided``) the chats to say it in;
* ``help_chat_closed``, ``_id`` = the minute chats closed (``2026-11-25T12:00Z``): the chats
  that closed in it, so that the retention sweep reads what is due by ``_id`` however many chats
  are stored; and ``swept-through``: the first close day not swept yet.

Retention (:mod:`services.help.retention`) deletes a closed chat whole: messages, the client ids
they were sent under, receipts, claims, the session's open record, the appeal's link once no
later chat uses it, and the chat document last (it says how far to look), so a sweep that
failed half way is finished by the next.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import DeleteOne

from appeals_runtime import expiries, store

CHATS = "help_chats"
MESSAGES = "help_chat_messages"
CLIENT_IDS = "help_chat_client_ids"
CLAIMS = "help_chat_claims"
RECEIPTS = "help_chat_receipts"
OPEN_CHATS = "help_chat_open"
PERSON_KEYS = "help_chat_keys"
APPEAL_PERSONS = "help_chat_appeals"
CLOSED = "help_chat_closed"
# The bucket document that holds the first close day the retention sweep has not swept yet.
SWEPT_THROUGH = "swept-through"
# Ids per $in (FerretDB hangs on commands of 100+ statements; an $in is one statement).
ID_BATCH = expiries.SWEEP_BATCH
# Message ids read past a chat's ``last_seq`` (a hint that may lag a crashed writer) when its
# messages are deleted: seqs have no gaps, so the first missing one ends the chat.
LOOK_PAST_LAST_SEQ = 8

ERASED = "[erased]"
NONCE_BYTES = 12
# A page of messages: the most one read returns.
PAGE = 100


def message_id(chat_id: str, seq: int) -> str:
    return f"{chat_id}:{seq:010d}"


def day_of(moment: datetime) -> datetime:
    """The UTC day ``moment`` falls on, as its midnight."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def minute_buckets(day: datetime) -> list[str]:
    """The ids of every close-minute bucket of ``day``."""
    return [expiries.bucket_id(day + timedelta(minutes=m)) for m in range(24 * 60)]


@dataclass(frozen=True)
class StoredMessage:
    chat_id: str
    seq: int
    party: str
    text: str
    sent_at: datetime
    client_id: str
    agent_id: str
    # {media_type, uri, size_bytes} each; none once the person's key is erased.
    attachments: tuple[dict[str, Any], ...] = ()
    # The outcome a system message about the appeal's decision says; "" on every other one.
    outcome: str = ""


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
        self._appeals = db[APPEAL_PERSONS]
        self._closed = db[CLOSED]
        self._wrapping = AESGCM(wrapping)
        # Whether this process made sure the sweep starts no later than the days it notes.
        self._sweep_start_noted = False

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
        attachments: Sequence[Mapping[str, Any]] = (),
        outcome: str = "",
    ) -> StoredMessage:
        """Store a message at the first free seq from ``first_seq`` on (a hint no higher than the
        last seq taken); write-once, so two writers never share a seq and none is skipped."""
        cipher = AESGCM(key)
        kept = tuple(dict(attachment) for attachment in attachments)
        seq = max(1, first_seq)
        while True:
            nonce = secrets.token_bytes(NONCE_BYTES)
            document: dict[str, Any] = {
                "_id": message_id(chat_id, seq),
                "party": party,
                "nonce": nonce,
                "text": cipher.encrypt(nonce, text.encode(), f"{chat_id}:{seq}".encode()),
                "sent_at": sent_at,
                "client_id": client_id,
                "agent_id": agent_id,
            }
            if kept:
                # Own nonce and associated data: the links cannot be swapped with the text.
                linked = secrets.token_bytes(NONCE_BYTES)
                document["attachments_nonce"] = linked
                document["attachments"] = cipher.encrypt(
                    linked, json.dumps(kept).encode(), _attachments_aad(chat_id, seq)
                )
            if outcome:
                document["outcome"] = outcome
            if await store.insert_once(self._messages, document):
                return StoredMessage(
                    chat_id, seq, party, text, sent_at, client_id, agent_id, kept, outcome
                )
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
        text, attachments = ERASED, ()
        if key is not None:
            cipher = AESGCM(key)
            try:
                text = cipher.decrypt(
                    bytes(doc["nonce"]), bytes(doc["text"]), f"{chat_id}:{seq}".encode()
                ).decode()
                if "attachments" in doc:
                    attachments = tuple(
                        json.loads(
                            cipher.decrypt(
                                bytes(doc["attachments_nonce"]),
                                bytes(doc["attachments"]),
                                _attachments_aad(chat_id, seq),
                            )
                        )
                    )
            except InvalidTag:
                # Written under a key since erased (the person was forgotten, then came back).
                text, attachments = ERASED, ()
        return StoredMessage(
            chat_id, seq, doc["party"], text, doc["sent_at"], doc["client_id"], doc["agent_id"],
            attachments, str(doc.get("outcome") or ""),
        )  # fmt: skip

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

    # --- appeals: whom to forget when intake erases one ----------------------------------------

    async def link_appeal(
        self, appeal_id: str, person: str, requested_at: datetime, chat_id: str
    ) -> None:
        """Note that ``chat_id``, a chat of ``person`` requested at ``requested_at``, is
        attached to the appeal (idempotent; one appeal is always one account, so one person)."""
        await store.available(
            self._appeals.update_one(
                {"_id": appeal_id},
                {
                    "$set": {"person": person},
                    "$max": {"requested_at": requested_at},
                    "$addToSet": {"chats": chat_id},
                },
                upsert=True,
            )
        )

    async def person_of_appeal(self, appeal_id: str) -> str | None:
        found = await store.available(self._appeals.find_one({"_id": appeal_id}))
        return str(found["person"]) if found else None

    async def chats_of_appeal(self, appeal_id: str) -> list[store.Document]:
        """The chats attached to the appeal that are still stored (the retention sweep may have
        deleted some a later chat's link still names; links noted before chats were listed name
        none): read by ``_id``."""
        found = await store.available(self._appeals.find_one({"_id": appeal_id}, {"chats": 1}))
        chats: list[store.Document] = []
        for some in expiries.chunks([str(c) for c in (found or {}).get("chats", [])], ID_BATCH):
            chats += await store.available(self._chats.find({"_id": {"$in": some}}).to_list(None))
        return sorted(chats, key=lambda chat: chat["requested_at"])

    async def unlink_appeal(self, appeal_id: str) -> None:
        await store.available(self._appeals.delete_one({"_id": appeal_id}))

    # --- retention: chats by the minute they closed --------------------------------------------

    async def note_closed(self, chat_id: str, closed_at: datetime) -> None:
        """List the chat in the bucket of the minute it closed (idempotent). The first note of
        this process makes sure the sweep starts no later than that day (``$min``: instances
        whose clocks disagree never move it past a day another has a bucket of)."""
        if not self._sweep_start_noted:
            await store.available(
                self._closed.update_one(
                    {"_id": SWEPT_THROUGH}, {"$min": {"day": day_of(closed_at)}}, upsert=True
                )
            )
            self._sweep_start_noted = True
        await store.available(
            self._closed.update_one(
                {"_id": expiries.bucket_id(expiries.minute_of(closed_at.astimezone(UTC)))},
                {"$addToSet": {"chats": chat_id}},
                upsert=True,
            )
        )

    async def swept_through(self) -> datetime | None:
        """The first close day the sweep has not swept; None when no chat ever closed."""
        found = await store.available(self._closed.find_one({"_id": SWEPT_THROUGH}))
        return found["day"] if found else None

    async def note_swept_through(self, day: datetime) -> None:
        # $max: two instances sweeping at once never move it back.
        await store.available(
            self._closed.update_one({"_id": SWEPT_THROUGH}, {"$max": {"day": day}})
        )

    async def closed_on(self, day: datetime) -> list[tuple[str, list[str]]]:
        """The buckets of chats that closed on ``day``: (bucket id, chat ids), by ``_id``."""
        buckets: list[tuple[str, list[str]]] = []
        for some in expiries.chunks(minute_buckets(day), ID_BATCH):
            found = await store.available(self._closed.find({"_id": {"$in": some}}).to_list(None))
            buckets += [(str(doc["_id"]), [str(c) for c in doc.get("chats", [])]) for doc in found]
        return sorted(buckets)

    async def drop_closed_bucket(self, bucket_id: str) -> None:
        await store.available(self._closed.delete_one({"_id": bucket_id}))

    async def delete_chats(self, chat_ids: list[str]) -> int:
        """Delete everything of these chats (see the module docstring), the chat documents last;
        chats already gone are skipped. Returns how many chats were still there."""
        chats = await store.available(
            self._chats.find(
                {"_id": {"$in": chat_ids}},
                {"last_seq": 1, "generation": 1, "session_id": 1, "appeal_id": 1,
                 "requested_at": 1},
            ).to_list(None)
        )  # fmt: skip
        if not chats:
            return 0
        found = [str(chat["_id"]) for chat in chats]
        messages, client_ids = await self._stored_messages(chats)
        # Client ids before the messages that name them: a rerun still finds them.
        await self._delete_ids(self._client_ids, client_ids)
        await self._delete_ids(self._messages, messages)
        await self._delete_ids(self._receipts, found)
        await self._delete_ids(self._claims, [c for chat in chats for c in _claim_ids(chat)])
        await store.available(
            self._open.bulk_write(
                [DeleteOne({"_id": chat["session_id"], "chat_id": chat["_id"]}) for chat in chats],
                ordered=False,
            )
        )
        await self._unlink_appeals(chats)
        await self.drop_chat_documents(found)
        return len(found)

    async def drop_chat_documents(self, chat_ids: list[str]) -> None:
        await self._delete_ids(self._chats, chat_ids)

    async def _stored_messages(self, chats: list[store.Document]) -> tuple[list[str], list[str]]:
        """The ids of the chats' messages and of the client ids they were stored under: read by
        ``_id`` from seq 1 to past ``last_seq``, and further for a chat whose last one read was
        there."""
        messages: list[str] = []
        client_ids: list[str] = []
        looking = {
            str(chat["_id"]): (1, int(chat.get("last_seq") or 0) + LOOK_PAST_LAST_SEQ)
            for chat in chats
        }
        while looking:
            chat_of = {
                message_id(chat_id, seq): chat_id
                for chat_id, (first, last) in looking.items()
                for seq in range(first, last + 1)
            }
            there: set[str] = set()
            for some in expiries.chunks(list(chat_of), ID_BATCH):
                for doc in await store.available(
                    self._messages.find({"_id": {"$in": some}}, {"client_id": 1}).to_list(None)
                ):
                    there.add(doc["_id"])
                    client_ids.append(f"{chat_of[doc['_id']]}:c:{doc['client_id']}")
            messages += sorted(there)
            looking = {
                chat_id: (last + 1, last + LOOK_PAST_LAST_SEQ)
                for chat_id, (_, last) in looking.items()
                if message_id(chat_id, last) in there
            }
        return messages, client_ids

    async def _unlink_appeals(self, chats: Iterable[store.Document]) -> None:
        """Drop the appeals' links to their person unless a later chat was attached since (that
        chat's sweep drops it). One findAndModify each: atomic with a concurrent link."""
        latest: dict[str, datetime] = defaultdict(lambda: datetime.min.replace(tzinfo=UTC))
        for chat in chats:
            if chat.get("appeal_id"):
                latest[chat["appeal_id"]] = max(latest[chat["appeal_id"]], chat["requested_at"])
        for appeal_id, requested_at in latest.items():
            await store.available(
                self._appeals.find_one_and_delete(
                    {"_id": appeal_id, "requested_at": {"$lte": requested_at}}
                )
            )

    @staticmethod
    async def _delete_ids(collection: store.Collection, ids: list[str]) -> None:
        for some in expiries.chunks(ids, ID_BATCH):
            await store.available(collection.delete_many({"_id": {"$in": some}}))


def _attachments_aad(chat_id: str, seq: int) -> bytes:
    return f"{chat_id}:{seq}:attachments".encode()


def _claim_ids(chat: store.Document) -> list[str]:
    """Every write-once claim the chat may have: an assignment and a hand-over per generation
    (one past the chat's, which may lag a hand-over that failed half way), the close and the
    first answer."""
    chat_id, generation = chat["_id"], int(chat.get("generation") or 0)
    return [
        *(f"{chat_id}:{kind}:{n}" for n in range(generation + 2) for kind in ("a", "h")),
        f"{chat_id}:closed",
        f"{chat_id}:first_answer",
    ]
