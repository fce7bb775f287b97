"""`make bench-audit`: append rate and full-verify time of the audit log.

Two measurements, printed separately because they answer different questions:

1. **Tree path, in memory** (default 1,000,000 entries): building each entry exactly as the
   repository does (canonical JSON, SHA-256 leaf hash) and growing the Merkle tree; then a full
   verification of those documents (recompute every leaf, every root, compare with a signed
   checkpoint). This is the CPU cost of the log, without any store.
2. **Store path, FerretDB** (default 20,000 entries): the consumer's real path, one event at a
   time (append with the optimistic slot insert, index the appeal), then integrating and signing a
   checkpoint, a full verification read back from the store, and inclusion proofs. Starts its own
   FerretDB in a temporary directory unless ``MONGODB_URL`` names a store.

Nothing is extrapolated: each figure is for the number of entries printed next to it.

    python -m services.audit.bench [--entries 1000000] [--store-entries 20000]
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

from appeals.v1 import appeal_pb2, events_pb2
from appeals_runtime import events, store, topics
from services.audit import checkpoints, entries, merkle, privacy, records, verification
from services.audit.config import AuditLogSettings
from services.audit.signed_note import Signer

START = datetime(2025, 3, 1, tzinfo=UTC)
# An appeal's lifecycle, cycled through so sizes are realistic: a submitted event carries the
# submission's facts and the appellant's pseudonym, the others are 60-200 bytes.
STEPS = ("submitted", "routed", "claimed", "decided", "notified")


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
    secrets = privacy.derive_secrets(bytes(32))
    data_key = privacy.new_data_key()
    for n in range(count):
        recorded = records.from_lifecycle_event(
            lifecycle_event(n), topic=topics.APPEAL_LIFECYCLE.name, secrets=secrets
        )
        event = recorded.event
        if recorded.personal is not None and recorded.subject is not None:
            sealed = privacy.seal(
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

        began = time.perf_counter()
        for n in range(count):
            event = lifecycle_event(n)
            recorded = records.from_lifecycle_event(
                event, topic=topics.APPEAL_LIFECYCLE.name, secrets=secrets
            )
            await service.record(recorded, records.index_facts(event))
        appended = time.perf_counter() - began
        line(
            "append (one event at a time, + appeal index)",
            f"{count / appended:,.0f} entries/s ({appended:.1f} s)",
        )

        began = time.perf_counter()
        signed = await service.integrity.checkpoint()
        line("integrate + sign the first checkpoint", f"{time.perf_counter() - began:.1f} s")

        began = time.perf_counter()
        result = await service.integrity.verify()
        verified = time.perf_counter() - began
        assert result.ok and result.entries == count, result
        line(
            "full verify read back from the store",
            f"{verified:.1f} s ({count / verified:,.0f} entries/s)",
        )

        latencies = []
        # Few: on FerretDB each proof scans the log and the tree (see the README).
        for index in range(0, count, max(1, count // 10)):
            began = time.perf_counter()
            await service.inclusion_bundle(index=index, tree_size=signed.size)
            latencies.append(time.perf_counter() - began)
        line(
            "inclusion proof (signed size, median of 10)",
            f"{statistics.median(latencies) * 1000:.1f} ms",
        )
    finally:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="tree path size")
    parser.add_argument("--store-entries", type=int, default=20_000, help="store path size")
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


if __name__ == "__main__":
    main()
