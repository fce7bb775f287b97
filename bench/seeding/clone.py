"""Cloning the template's documents (every service's but audit's), fast.

Each template document is encoded once and cut at its rewritable tokens (:class:`Pattern`); a
clone is those pieces joined with the clone's tokens, handed to the driver as raw BSON (no
decoding, no re-encoding: the tokens keep their length, so every length prefix stays right). An
ObjectId ``_id`` gets a fresh ObjectId per clone. Documents go in with unordered ``insert_many``
in large batches, two batches in flight so that building the next overlaps the store's work.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import bson
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError

from appeals_runtime import store
from bench.seeding.template import RAW, StoredDocument, Template, store_codec
from bench.seeding.tokens import Pattern, TokenMap, locate

BATCH = 2000
IN_FLIGHT = 2
_OBJECT_ID_AT = slice(9, 21)  # an ObjectId _id as the first element: type 0x07, "_id\0", 12 bytes
DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Prepared:
    database: str
    collection: str
    pattern: Pattern
    # The _id is an ObjectId in first position: patch a fresh one in per clone.
    fresh_object_id: bool


def prepare(template: Template, token_map: TokenMap) -> tuple[list[Prepared], Counter[str]]:
    """The documents to clone, cut at their tokens, and how many are left out (by collection)
    because their ``_id`` would not change."""
    prepared: list[Prepared] = []
    skipped: Counter[str] = Counter()
    for document in template.documents:
        pattern = Pattern.of(document.raw, locate(document.raw, token_map.index))
        item = _prepared(document, pattern, token_map)
        if item is None:
            skipped[f"{document.database}.{document.collection}"] += 1
        else:
            prepared.append(item)
    return prepared, skipped


def _prepared(document: StoredDocument, pattern: Pattern, token_map: TokenMap) -> Prepared | None:
    identity = bson.decode(document.raw, codec_options=store_codec()).get("_id")
    raw = document.raw
    first_is_object_id = raw[4] == 0x07 and raw[5:9] == b"_id\x00"
    if isinstance(identity, ObjectId):
        if not first_is_object_id:
            return None  # rare enough not to handle: left out, counted
        return Prepared(document.database, document.collection, pattern, True)
    if isinstance(identity, str) and locate(identity.encode(), token_map.index):
        return Prepared(document.database, document.collection, pattern, False)
    return None


def render(item: Prepared, variants: list[bytes]) -> RawBSONDocument:
    raw = item.pattern.render(variants)
    if item.fresh_object_id:
        patched = bytearray(raw)
        patched[_OBJECT_ID_AT] = ObjectId().binary
        raw = bytes(patched)
    return RawBSONDocument(raw)


@dataclass
class CloneProgress:
    clones_done: int = 0
    documents: int = 0
    duplicates: int = 0
    by_collection: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))


class Cloner:
    def __init__(self, client: AsyncMongoClient[store.Document], prepared: list[Prepared]) -> None:
        self._client = client
        self._prepared = prepared
        self._buffers: defaultdict[tuple[str, str], list[RawBSONDocument]] = defaultdict(list)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failures: list[BaseException] = []
        self.progress = CloneProgress()

    async def clone(
        self,
        token_map: TokenMap,
        clones: Iterable[int],
        on_clone: Callable[[], None] = lambda: None,
    ) -> CloneProgress:
        for clone in clones:
            variants = token_map.variants(clone)
            for item in self._prepared:
                key = (item.database, item.collection)
                buffer = self._buffers[key]
                buffer.append(render(item, variants))
                if len(buffer) >= BATCH:
                    await self._send(key)
            self.progress.clones_done += 1
            on_clone()
            await asyncio.sleep(0)  # let progress and observers run between clones
        for key in list(self._buffers):
            await self._send(key)
        if self._in_flight:
            await asyncio.wait(self._in_flight)
        self._raise_failure()
        return self.progress

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failures.append(task.exception())  # type: ignore[arg-type]

    def _raise_failure(self) -> None:
        if self._failures:
            raise self._failures[0]

    async def _send(self, key: tuple[str, str]) -> None:
        documents = self._buffers.pop(key, [])
        if not documents:
            return
        while len(self._in_flight) >= IN_FLIGHT:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
        self._raise_failure()
        task = asyncio.create_task(self._insert(key, documents))
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    async def _insert(self, key: tuple[str, str], documents: list[RawBSONDocument]) -> None:
        database, name = key
        collection = self._client[database].get_collection(name, codec_options=RAW)
        inserted = len(documents)
        try:
            await collection.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            self.progress.duplicates += len(errors)
            inserted = int(error.details.get("nInserted", 0))
        self.progress.documents += inserted
        self.progress.by_collection[f"{database}.{name}"] += inserted
