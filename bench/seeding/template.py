"""The warm-up's documents, snapshotted as the template that history is cloned from.

Taken right after the warm-up on a fresh stack, so the stores hold nothing else: every document
of every database and collection (the audit service's excepted, see ``bench.audit_log``) was
written by the services for the warm-up appeals, in today's shapes, whatever those are. Which of
them are an appeal's history, and which of their ids are that appeal's own, is read off the
documents themselves:

* a document that mentions (the token of) one or more template appeals is history and is cloned;
  one that mentions none (a reviewer's profile, a counter) is shared state and is not;
* a token is rewritten in clones when the history documents it occurs in all belong to the same
  single appeal (the appeal's event ids, keys, pseudonym, subject); a token seen with several
  appeals (a reviewer's id, a day) stays, as it would in real history. Documents that name no
  appeal do not count here: an expiry bucket listing the keys of many appeals does not make
  those keys shared;
* a cloned document's ``_id`` must change (contain a rewritten token, or be an ObjectId, which
  each clone gets fresh); one whose ``_id`` would not (an appeal's entry in a per-minute bucket)
  is left out and counted.

The audit log's entries are part of the template (their payloads' strings count for the tokens),
but are re-appended through audit's own code rather than cloned (``audit_seeder``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from appeals import topics
from appeals_runtime import store
from bench import audit_log
from bench.seeding import messages
from bench.seeding.tokens import TokenMap, tokens_in_document, tokens_in_text

SYSTEM_DATABASES = frozenset({"admin", "local", "config"})
RAW = CodecOptions(document_class=RawBSONDocument, tz_aware=True)
# Audit entry fields that are not the event's own (hashes, encodings, sealed data).
_ENTRY_DERIVED = frozenset({"payload", "leaf_hash", "sealed", "_id", "index"})


@dataclass(frozen=True)
class StoredDocument:
    database: str
    collection: str
    raw: bytes


@dataclass
class Template:
    appeal_ids: list[str]
    # Non-audit documents that are some template appeal's history.
    documents: list[StoredDocument]
    # The template appeals' audit log entries, in log order (full documents).
    audit_entries: list[dict[str, Any]]
    rewritable: set[str]
    # Documents left out as shared state, by "database.collection".
    shared: Counter[str] = field(default_factory=Counter)

    def token_map(self, max_clones: int) -> TokenMap:
        return TokenMap.build(self.rewritable, max_clones)

    def documents_per_appeal(self) -> float:
        return (len(self.documents) + 2 * len(self.audit_entries)) / max(1, len(self.appeal_ids))

    def to_bytes(self, max_clones: int) -> bytes:
        """What the audit seeder process needs, as one BSON document."""
        return bson.encode(
            {
                "tokens": list(self.token_map(max_clones).tokens),
                "max_clones": max_clones,
                "entries": self.audit_entries,
            }
        )


def appeal_token(appeal_id: str) -> str:
    """The token that stands for an appeal id (its random part)."""
    found = list(tokens_in_text(appeal_id))
    if len(found) != 1:
        raise ValueError(f"appeal id {appeal_id!r} has no single token")
    return found[0]


def rewritable_tokens(documents: Iterable[set[str]], appeal_tokens: Mapping[str, str]) -> set[str]:
    """Tokens that belong to exactly one appeal (see the module's docstring). ``documents`` are
    the token sets of every stored document; ``appeal_tokens`` maps a token to its appeal id."""
    owners: defaultdict[str, set[str]] = defaultdict(set)
    for tokens in documents:
        appeals = {appeal_tokens[token] for token in tokens if token in appeal_tokens}
        for token in tokens if appeals else ():
            owners[token] |= appeals
    own = {token for token, appeals in owners.items() if len(appeals) == 1}
    return own | set(appeal_tokens)


def entry_tokens(entry: Mapping[str, Any]) -> set[str]:
    """An audit entry's tokens: its own fields and the strings of the event it logged."""
    found = tokens_in_document({k: v for k, v in entry.items() if k not in _ENTRY_DERIVED})
    topic = _topics().get(audit_log.entry_topic(entry))
    if topic is not None:
        payload = topic.decode(audit_log.payload_bytes(entry))
        for text in messages.strings(payload):
            found.update(tokens_in_text(text))
    return found


def _topics() -> dict[str, topics.Topic[Any]]:
    return {topic.name: topic for topic in topics.REGISTRY}


async def snapshot(client: AsyncMongoClient[store.Document], appeal_ids: list[str]) -> Template:
    """Read the template from the stores (see the module's docstring)."""
    appeal_tokens = {appeal_token(appeal_id): appeal_id for appeal_id in appeal_ids}
    stored: list[tuple[StoredDocument, set[str]]] = []
    entries: list[dict[str, Any]] = []
    for database in sorted(set(await client.list_database_names()) - SYSTEM_DATABASES):
        db = client[database]
        for name in sorted(await db.list_collection_names()):
            if name == audit_log.LOG_COLLECTION:
                entries.extend(await _log_entries(db[name], set(appeal_ids)))
                continue
            if audit_log.is_audit_collection(name):
                continue
            raw_collection = cast(
                "AsyncCollection[RawBSONDocument]", db.get_collection(name, codec_options=RAW)
            )
            async for found in raw_collection.find({}):
                raw = bytes(found.raw)
                decoded = bson.decode(raw, codec_options=store_codec())
                stored.append((StoredDocument(database, name, raw), tokens_in_document(decoded)))
    token_sets = [tokens for _, tokens in stored] + [entry_tokens(entry) for entry in entries]
    rewritable = rewritable_tokens(token_sets, appeal_tokens)
    template = Template(appeal_ids, [], entries, rewritable)
    for kept, tokens in stored:
        if tokens & set(appeal_tokens):
            template.documents.append(kept)
        else:
            template.shared[f"{kept.database}.{kept.collection}"] += 1
    return template


def store_codec() -> CodecOptions[dict[str, Any]]:
    return CodecOptions(tz_aware=True)


async def _log_entries(log: store.Collection, appeal_ids: set[str]) -> list[dict[str, Any]]:
    size = await audit_log.first_free_slot(log)
    found = []
    for start in range(0, size, audit_log.READ_BATCH):
        batch = await audit_log.read_slots(log, start, audit_log.READ_BATCH, full=True)
        for slot in sorted(batch):
            entry = batch[slot]
            if entry.get("appeal_id") in appeal_ids and audit_log.is_about_appeal(entry):
                found.append(entry)
    return found
