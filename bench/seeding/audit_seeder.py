"""Seeds the audit log with clones of the template appeals' events, through audit's own code.

    python -m bench.seeding.audit_seeder TEMPLATE_FILE FIRST_CLONE LAST_CLONE

Run by the bench as its own process (next to the cloning of the other services' documents),
with the audit service's environment and while the audit service is stopped. The log's entries
are slot-numbered and hashed into a Merkle tree, so they cannot be cloned like other documents:
each template entry's event is rebuilt with the clone's ids (its payload's tokens replaced, see
``tokens.py``) and handed to audit's consumer handler (``AuditHandler``), which seals, appends
and indexes it exactly as it does for a Kafka record. Two things make that fast enough for
millions of events, without changing what is stored:

* the handler's database is a :class:`WriteBehind`, so its one-document inserts go to the store
  as bulk inserts; and an audit service that appends by group commit is fed many appeals at
  once (each appeal's events in order), as its consumer feeds it, so its own batching applies;
* every ``CHECKPOINT_EVERY`` events, audit's own ``Integrity.checkpoint()`` integrates the new
  entries and signs the tree, reading those entries from memory (they were just written) or, for
  entries that are not there, by ``_id`` slot batches, instead of a range query that scans the
  whole log. The log stays verifiable and the audit service starts with nothing to integrate.

Prints one JSON line per second (``{"entries": n}``) and a last one with ``"done": true``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import bson

from appeals import topics
from appeals_runtime import store
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.settings import load_settings
from bench import audit_log
from bench.seeding.template import store_codec
from bench.seeding.tokens import Pattern, TokenMap, locate
from bench.seeding.write_behind import WriteBehind
from services.audit.config import AuditLogSettings
from services.audit.consumer import AuditHandler
from services.audit.log import entries as audit_entries
from services.audit.main import build

CHECKPOINT_EVERY = 50_000
PROGRESS_EVERY_S = 1.0
# Events handed over at once to a group-commit appender (it writes up to 500 per batch).
GROUP_COMMIT_CONCURRENCY = 2000


class TemplateEvent:
    """One template entry's event, cut at its tokens, ready to become any clone's event."""

    def __init__(self, entry: dict[str, Any], token_map: TokenMap) -> None:
        self.topic = _topic(audit_log.entry_topic(entry))
        payload = audit_log.payload_bytes(entry)
        self.pattern = Pattern.of(payload, locate(payload, token_map.index))
        self.producer = audit_log.entry_producer(entry).encode()
        self.appeal_id = str(entry["appeal_id"])
        self._appeal_places = locate(self.appeal_id.encode(), token_map.index)
        recorded = entry.get("occurred_at")
        self.timestamp_ms = int(recorded.timestamp() * 1000) if recorded else 0

    def message(self, variants: list[bytes]) -> InboundMessage[Any]:
        payload = self.topic.decode(self.pattern.render(variants))
        key = Pattern.of(self.appeal_id.encode(), self._appeal_places).render(variants).decode()
        return InboundMessage(
            topic=self.topic.name,
            partition=0,
            offset=0,
            key=key,
            payload=payload,
            headers={h.PRODUCER: self.producer},
            timestamp_ms=self.timestamp_ms,
        )


def _topic(name: str) -> topics.Topic[Any]:
    for topic in topics.REGISTRY:
        if topic.name == name:
            return topic
    raise ValueError(f"audit entry from unknown topic {name!r}")


class Seeder:
    def __init__(self, db: store.Database, settings: AuditLogSettings) -> None:
        self._log = db[audit_log.LOG_COLLECTION]
        # Entries written since the last checkpoint, by slot: what integrating them reads.
        self._recent: dict[int, dict[str, Any]] = {}
        self.writer = WriteBehind(db, on_insert=self._remember)
        self.service, secrets = build(cast(store.Database, self.writer), settings)
        self.handler = AuditHandler(self.service, secrets)
        self.handed = 0  # events handed to the handler so far
        # Instance attribute over the method: only this seeder's repository reads this way.
        setattr(self.service.log, "range", self._range)  # noqa: B010

    def _remember(self, collection: str, document: dict[str, Any]) -> None:
        if collection == audit_log.LOG_COLLECTION:
            slot = audit_entries.slot_of(document.get("_id"))
            if slot is not None:
                self._recent[slot] = document

    async def _range(self, start: int, end: int) -> dict[int, store.Document]:
        found = {slot: self._recent[slot] for slot in range(start, end) if slot in self._recent}
        missing = [slot for slot in range(start, end) if slot not in found]
        while missing:
            first = missing[0]
            batch = await audit_log.read_slots(self._log, first, audit_log.READ_BATCH, full=True)
            found.update({slot: doc for slot, doc in batch.items() if start <= slot < end})
            missing = [slot for slot in missing if slot >= first + audit_log.READ_BATCH]
        return found

    async def checkpoint(self) -> int:
        await self.writer.flush()
        signed = await self.service.integrity.checkpoint()
        await self.writer.flush()
        self._recent = {slot: doc for slot, doc in self._recent.items() if slot >= signed.size}
        return signed.size


def by_appeal(events: list[TemplateEvent]) -> list[list[TemplateEvent]]:
    """The template's events grouped per appeal, each group in log order."""
    groups: dict[str, list[TemplateEvent]] = {}
    for event in events:
        groups.setdefault(event.appeal_id, []).append(event)
    return list(groups.values())


def concurrency(service: Any) -> int:
    """Appeals seeded side by side. An audit service that appends by group commit (its events
    handed over together share one write) is fed as its consumer feeds it: many appeals at once,
    each appeal's events one after another. One that appends one event at a time, racing for
    the tail, is fed one event at a time."""
    return GROUP_COMMIT_CONCURRENCY if hasattr(service, "appender") else 1


async def seed(template_file: Path, first: int, last: int) -> None:
    raw = await asyncio.to_thread(template_file.read_bytes)
    template = bson.decode(raw, codec_options=store_codec())
    token_map = TokenMap(tuple(template["tokens"]), int(template["max_clones"]))
    appeals = by_appeal([TemplateEvent(entry, token_map) for entry in template["entries"]])
    per_clone = sum(len(events) for events in appeals)
    settings = load_settings(AuditLogSettings)
    client = store.create_client(settings.mongodb_url, app_name="bench-seed-audit")
    try:
        database = store.service_database(settings.mongodb_database, "audit")
        seeder = Seeder(client[database], settings)
        workers = concurrency(seeder.service)
        await seeder.checkpoint()  # what the audit service appended since its last checkpoint
        appended = 0
        clones_per_wave = max(1, CHECKPOINT_EVERY // max(1, per_clone))
        reporter = asyncio.create_task(_report(lambda: seeder.handed))
        try:
            for wave_start in range(first, last + 1, clones_per_wave):
                wave = range(wave_start, min(last, wave_start + clones_per_wave - 1) + 1)
                jobs = [(clone, events) for clone in wave for events in appeals]
                appended += await _run_wave(seeder, token_map, jobs, workers)
                await seeder.checkpoint()
        finally:
            reporter.cancel()
        size = await seeder.checkpoint()
        _say(
            entries=appended,
            clones=last - first + 1,
            log_size=size,
            concurrency=workers,
            duplicates=dict(seeder.writer.duplicates),
            done=True,
        )
    finally:
        await client.close()


async def _run_wave(
    seeder: Seeder,
    token_map: TokenMap,
    jobs: list[tuple[int, list[TemplateEvent]]],
    workers: int,
) -> int:
    """Hand every job's events to the handler, each appeal's in order, as the consumer runner
    does: with ``workers`` = 1 one event at a time; otherwise in rounds, the next event of every
    appeal of the wave at once (different appeals side by side, so a group commit takes them in
    batches as large as it allows), each round once the previous one is answered. Returns how
    many events were handed over."""
    variants = {clone: token_map.variants(clone) for clone in {clone for clone, _ in jobs}}
    if workers == 1:
        for clone, events in jobs:
            for event in events:
                await seeder.handler(event.message(variants[clone]))
                seeder.handed += 1
        return sum(len(events) for _, events in jobs)
    handed = 0
    for turn in range(max((len(events) for _, events in jobs), default=0)):
        due = [(clone, events[turn]) for clone, events in jobs if turn < len(events)]
        for start in range(0, len(due), workers):
            await asyncio.gather(
                *(seeder.handler(event.message(variants[clone]))
                  for clone, event in due[start : start + workers])
            )  # fmt: skip
            handed += len(due[start : start + workers])
            seeder.handed += len(due[start : start + workers])
    return handed


async def _report(appended: Callable[[], int]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        _say(entries=appended())


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    template_file, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    asyncio.run(seed(Path(template_file), first, last))


if __name__ == "__main__":
    main()
