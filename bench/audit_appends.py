"""`make bench-audit`: append rates and full-verify time of the audit log (development tooling:
it starts its own Kafka and FerretDB, so it lives with the bench, outside the audit service).

Three measurements, printed separately because they answer different questions:

1. **Tree path, in memory** (default 1,000,000 entries): building each entry exactly as the
   repository does (canonical JSON, SHA-256 leaf hash) and growing the Merkle tree; then a full
   verification of those documents (recompute every leaf, every root, compare with a signed
   checkpoint). This is the CPU cost of the log, without any store.
2. **Store path, FerretDB** (default 20,000 entries): the consumer's code without Kafka
   (``AuditService.record``: the group-commit appender, the event's slot, the appeal's document),
   first one event at a time (a lone appeal: every batch holds one event), then with 200 appeals
   in flight as the consumer runner hands them over (one appeal's events one after another); then
   the reads at that size: integrating and signing a checkpoint, a trail, an event by id, a page of
   a query, a full verification read back from the store, and inclusion proofs. Starts its own
   FerretDB in a temporary directory unless ``MONGODB_URL`` names a store.
3. **Consumer path, Kafka + FerretDB** (default 20,000 events): the events of 4,000 appeals are
   published to ``appeals.lifecycle.v1`` first, then the real audit consumer (runner, handler,
   service, appender) drains them into an empty log; the rate is entries logged per second from
   the first entry to the last. Starts its own Kafka and FerretDB (needs the Kafka jars: `make
   kafka`).

Nothing is extrapolated: each figure is for the number of entries printed next to it.

    python -m bench.audit_appends [--entries 1000000] [--store-entries 20000]
                                   [--consumer-events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appeals import events, topics
from appeals.v1 import appeal_pb2, events_pb2
from appeals_proofs import checkpoints, merkle
from appeals_proofs.signed_note import Signer
from appeals_runtime import store
from services.audit.config import AuditLogSettings
from services.audit.log import entries, records, verification
from services.audit.privacy import sealing

START = datetime(2025, 3, 1, tzinfo=UTC)
# An appeal's lifecycle, cycled through so sizes are realistic: a submitted event carries the
# submission's facts and the appellant's pseudonym, the others are 60-200 bytes.
STEPS = ("submitted", "routed", "claimed", "decided", "notified")
# The store path appends this many entries one at a time, the rest with LANES appeals in flight
# (the consumer runner's default max_in_flight).
SEQUENTIAL_ENTRIES = 2_000
LANES = 200


def submitted(n: int) -> events_pb2.AppealSubmitted:
    facts = appeal_pb2.SubmissionFacts(
        platform=appeal_pb2.PLATFORM_INSTAGRAM,
        subject=appeal_pb2.Subject(kind=appeal_pb2.SUBJECT_KIND_POST, id=f"{n:016d}"),
        decision=appeal_pb2.OriginalDecision(
            id=f"dec-{n}", policy="hate_speech", action="removed", automated=True
        ),
        locale="de-DE",
        country="DE",
    )
    facts.decision.decided_at.FromDatetime(START - timedelta(days=1))
    return events_pb2.AppealSubmitted(
        facts=facts, channel="rest", appellant_pseudonym=f"psn_{n:032x}"
    )


def lifecycle_event(n: int) -> events_pb2.AppealEvent:
    appeal_id = f"ap_{n // len(STEPS):026d}"
    step = STEPS[n % len(STEPS)]
    payloads: dict[str, Any] = {
        "submitted": submitted(n),
        "routed": events_pb2.AppealRouted(
            queue="instagram.de", priority=2, platform=appeal_pb2.PLATFORM_INSTAGRAM
        ),
        "claimed": events_pb2.CaseClaimed(agent_id="agent-0042", queue="instagram.de"),
        "decided": events_pb2.AppealDecided(
            agent_id="agent-0042",
            outcome=appeal_pb2.OUTCOME_OVERTURNED,
            rationale="A quotation in news reporting, not an attack on a protected group.",
            policy_cited="hate_speech.newsworthy_quotation",
            platform=appeal_pb2.PLATFORM_INSTAGRAM,
        ),
        "notified": events_pb2.AppellantNotified(kind="decided", channel="instagram_dm"),
    }
    return events.new_event(
        event_id=events.derived_event_id(appeal_id, step, str(n)),
        appeal_id=appeal_id,
        producer="routing",
        occurred_at=START + timedelta(milliseconds=n),
        **{step: payloads[step]},
    )


def logged_events(count: int) -> Iterator[entries.LoggedEvent]:
    """What the consumer hands the log: redacted events, personal data sealed (one data key for
    all, since key storage is the store path's business)."""
    secrets = sealing.derive_secrets(bytes(32))
    data_key = sealing.new_data_key()
    for n in range(count):
        recorded = records.from_lifecycle_event(
            lifecycle_event(n), topic=topics.APPEAL_LIFECYCLE.name, secrets=secrets
        )
        event = recorded.event
        if recorded.personal is not None and recorded.subject is not None:
            sealed = sealing.seal(
                data_key, recorded.personal, subject=recorded.subject, event_id=event.event_id
            )
            event = dataclasses.replace(event, sealed=sealed)
        yield event


def line(label: str, value: str) -> None:
    print(f"  {label:<46} {value}", flush=True)


# 1. The tree path, in memory ----------------------------------------------------------------


def bench_tree(count: int) -> None:
    print(f"\n[1] tree path, in memory, {count:,} entries (no store)", flush=True)
    signer = Signer("bench.local/audit", Ed25519PrivateKey.generate())
    # Built up front: encoding, redacting and sealing events is the consumer's work, not the log's.
    stream = list(logged_events(count))

    builder = merkle.TreeBuilder()
    documents = []
    began = time.perf_counter()
    for index, event in enumerate(stream):
        document = entries.new_entry(event, index=index, recorded_at=event.occurred_at)
        builder.push(bytes.fromhex(document[entries.LEAF_HASH]))
        documents.append(document)
    appended = time.perf_counter() - began
    signed = checkpoints.sign(checkpoints.Checkpoint(signer.name, count, builder.root()), signer)
    line(
        "append (entry + leaf hash + tree)", f"{count / appended:,.0f} entries/s ({appended:.1f} s)"
    )

    began = time.perf_counter()
    scan = verification.LogScan()
    for document in documents:
        scan.add(document)
    leaves = scan.leaves()
    comparison = verification.compare_with_checkpoints(leaves, scan.size, [signed])
    result = verification.summarise(scan, comparison, latest_checkpoint=signed.size)
    verified = time.perf_counter() - began
    assert result.ok, result
    line(
        "full verify (every leaf, root vs checkpoint)",
        f"{verified:.1f} s ({count / verified:,.0f} entries/s)",
    )


# 2. The store path, FerretDB ----------------------------------------------------------------


async def _record_all(service: Any, secrets: sealing.Secrets, numbers: range, lanes: int) -> None:
    """Record events ``numbers`` with ``lanes`` appeals in flight, each appeal's events in order
    (what the consumer runner does with different keys)."""
    by_appeal: dict[int, list[int]] = {}
    for n in numbers:
        by_appeal.setdefault(n // len(STEPS), []).append(n)
    queue = list(by_appeal.values())

    async def lane() -> None:
        while queue:
            for n in queue.pop(0):
                event = lifecycle_event(n)
                recorded = records.from_lifecycle_event(
                    event, topic=topics.APPEAL_LIFECYCLE.name, secrets=secrets
                )
                await service.record(recorded, records.index_facts(event))

    await asyncio.gather(*(lane() for _ in range(lanes)))


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


async def _bench_reads(service: Any, count: int) -> range:
    """The per-request reads at this size; returns the appeals' positions it probed."""
    from services.audit.service import Reader

    reader = Reader("bench", "ops")
    probes = range(0, count, max(1, count // 10))
    trails, found, pages = [], [], []
    for n in probes:
        event = lifecycle_event(n)
        began = time.perf_counter()
        await service.log_access(reader, "trail", event.appeal_id)
        await service.trail(event.appeal_id)
        trails.append(time.perf_counter() - began)
        began = time.perf_counter()
        assert await service.log.find_event(event.event_id) is not None
        found.append(time.perf_counter() - began)
        began = time.perf_counter()
        await service.log.query_appeals(platform="instagram", after=n, limit=50)
        pages.append(time.perf_counter() - began)
    line("trail + proofs, read logged (median of 10)", _median_ms(trails))
    line("event by id (median of 10)", _median_ms(found))
    line("query: page of 50 appeals (median of 10)", _median_ms(pages))
    return probes


async def bench_store(url: str, count: int, state: Path) -> None:
    from services.audit.main import INDEXES, build

    print(f"\n[2] store path, {count:,} entries through the consumer's code into {url}", flush=True)
    client = store.create_client(url, app_name="audit-bench")
    name = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        db = client[name]
        await store.ensure_indexes(db, INDEXES)
        settings = AuditLogSettings(mongodb_database=name, audit_state_dir=state)
        service, secrets = build(db, settings)

        alone = min(count, SEQUENTIAL_ENTRIES)
        began = time.perf_counter()
        await _record_all(service, secrets, range(alone), lanes=1)
        appended = time.perf_counter() - began
        line(
            f"append one event at a time ({alone:,})",
            f"{alone / appended:,.0f} entries/s ({appended:.1f} s)",
        )
        if count > alone:
            began = time.perf_counter()
            await _record_all(service, secrets, range(alone, count), lanes=LANES)
            appended = time.perf_counter() - began
            line(
                f"append, {LANES} appeals in flight ({count - alone:,})",
                f"{(count - alone) / appended:,.0f} entries/s ({appended:.1f} s)",
            )

        began = time.perf_counter()
        signed = await service.integrity.checkpoint()
        line("integrate + sign the first checkpoint", f"{time.perf_counter() - began:.1f} s")

        probes = await _bench_reads(service, count)

        began = time.perf_counter()
        result = await service.integrity.verify()
        verified = time.perf_counter() - began
        assert result.ok and result.entries == count + len(probes), result
        line(
            "full verify read back from the store",
            f"{verified:.1f} s ({result.entries / verified:,.0f} entries/s)",
        )

        latencies = []
        for index in probes:
            began = time.perf_counter()
            await service.inclusion_bundle(index=index, tree_size=signed.size)
            latencies.append(time.perf_counter() - began)
        line("inclusion proof (signed size, median of 10)", _median_ms(latencies))
    finally:
        await client.drop_database(name)
        await client.close()


# 3. The consumer path, Kafka + FerretDB ------------------------------------------------------


async def bench_consumer(kafka: str, url: str, count: int, state: Path) -> None:
    from appeals_runtime.kafka.producer import EventProducer
    from services.audit.consumer import audit_consumer
    from services.audit.main import INDEXES, build

    appeals = count // len(STEPS)
    count = appeals * len(STEPS)
    print(
        f"\n[3] consumer path, {count:,} events of {appeals:,} appeals through the audit consumer "
        f"(Kafka {kafka}, {url})",
        flush=True,
    )
    client = store.create_client(url, app_name="audit-bench")
    name = f"bench_{uuid.uuid4().hex[:8]}"
    producer = EventProducer(kafka, client_id="audit-bench", publish_timeout_s=30)
    await producer.start()
    try:
        db = client[name]
        await store.ensure_indexes(db, INDEXES)
        service, secrets = build(db, AuditLogSettings(mongodb_database=name, audit_state_dir=state))
        began = time.perf_counter()
        for step in range(len(STEPS)):  # one step of every appeal at a time: each stays in order
            await asyncio.gather(
                *(
                    producer.publish(
                        topics.APPEAL_LIFECYCLE, lifecycle_event(a * len(STEPS) + step)
                    )
                    for a in range(appeals)
                )
            )
        line("published first (not measured)", f"{time.perf_counter() - began:.1f} s")

        runner = audit_consumer(
            name="audit-bench",
            bootstrap_servers=kafka,
            group_id=f"audit-bench-{uuid.uuid4().hex[:8]}",
            service=service,
            secrets=secrets,
            producer=producer,
        )
        started = time.perf_counter()
        running = asyncio.create_task(runner.run())
        first = None
        size = 0
        try:
            while size < count:
                await asyncio.sleep(0.1)
                size = await service.log.size()
                if first is None and size:
                    first = (time.perf_counter(), size)
                if running.done():
                    running.result()
        finally:
            await runner.stop()
            await running
        assert first is not None
        ended = time.perf_counter()
        line("joined the group, first entry after", f"{first[0] - started:.1f} s")
        line(
            "drain: entries logged per second",
            f"{(count - first[1]) / (ended - first[0]):,.0f} entries/s "
            f"({count:,} in {ended - first[0]:.1f} s)",
        )
        result = await service.integrity.verify()
        assert result.ok and result.entries == count, result
        sample = await service.log.appeal(lifecycle_event(0).appeal_id)
        assert sample is not None and len(sample["entries"]) == len(STEPS), sample
        line("every event once, log verified", "yes")
    finally:
        await producer.stop()
        await client.drop_database(name)
        await client.close()


def _store(state: Path) -> tuple[str, Any]:
    url = os.environ.get("MONGODB_URL")
    if url:
        return url, None
    from appeals_devstack.ferretdb import FerretDB
    from appeals_devstack.processes import free_port

    ferret = FerretDB(state / "ferretdb", free_port())
    ferret.start()
    ferret.wait_ready()
    return ferret.url, ferret


def _consumer_stack(state: Path) -> Any:
    from appeals_devstack.paths import kafka_libs_dir
    from appeals_devstack.processes import free_port
    from appeals_devstack.stack import Infrastructure

    if not kafka_libs_dir().exists():
        return None
    return Infrastructure.start(
        state,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        mongodb_port=free_port(),
        existing_mongodb=os.environ.get("MONGODB_URL"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="tree path size")
    parser.add_argument("--store-entries", type=int, default=20_000, help="store path size")
    parser.add_argument("--consumer-events", type=int, default=20_000, help="consumer path size")
    args = parser.parse_args()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"audit log benchmark: {os.cpu_count()} CPU(s), one Python process, "
        f"load average before start {load}"
    )
    if args.entries:
        bench_tree(args.entries)
    if args.store_entries:
        with tempfile.TemporaryDirectory(prefix="audit-bench-") as folder:
            url, ferret = _store(Path(folder))
            try:
                asyncio.run(bench_store(url, args.store_entries, Path(folder) / "audit"))
            finally:
                if ferret is not None:
                    ferret.stop()
    if args.consumer_events:
        with tempfile.TemporaryDirectory(prefix="audit-bench-") as folder:
            stack = _consumer_stack(Path(folder) / "stack")
            if stack is None:
                print("\n[3] consumer path skipped: no Kafka jars (make kafka)", flush=True)
                return
            try:
                asyncio.run(
                    bench_consumer(
                        stack.kafka_bootstrap_servers,
                        stack.mongodb_url,
                        args.consumer_events,
                        Path(folder) / "audit",
                    )
                )
            finally:
                stack.stop()


if __name__ == "__main__":
    main()
