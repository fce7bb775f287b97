"""History mode: grow the stores to each size by cloning the template, then measure again.

For each size (ascending) the services are stopped, the stores grown to that many appeals
(``clone.py`` for every service's documents, ``audit_seeder`` in a process of its own for the
audit log, side by side), the services started again, and idle CPU and one open-loop step
measured as at the start. Clone numbers run on across sizes, so every clone's ids are fresh.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

from bench.children import Child
from bench.seeding.clone import Cloner, prepare
from bench.seeding.template import Template

if TYPE_CHECKING:
    from bench.session import Session


async def measure(session: Session, template: Template) -> dict[str, Any]:
    sizes = []
    seeded = 0
    per_clone = len(template.appeal_ids)
    max_clones = _max_clones(session.options.history, per_clone)
    next_clone = 1
    for size in session.options.history:
        stored = len(session.accepted) + seeded
        clones = max(0, math.ceil((size - stored) / per_clone))
        seeding = None
        if clones:
            last = next_clone + clones - 1
            seeding = await _seed(session, template, max_clones, next_clone, last)
            next_clone += clones
            seeded += clones * per_clone
        appeals = len(session.accepted) + seeded
        await session.stop_reviewers()
        idle = await session.measure_idle(session.options.history_idle_s)
        await session.start_reviewers()
        step = await session.open_step(
            f"history-{size}", session.options.history_rate, session.options.step_s
        )
        sizes.append(
            {"size": size, "appeals": appeals, "seeding": seeding, "idle": idle, "step": step}
        )
    return {
        "template_appeals": per_clone,
        "documents_per_appeal": round(template.documents_per_appeal(), 1),
        "shared_documents": dict(template.shared),
        "rewritable_tokens": len(template.rewritable),
        "sizes": sizes,
    }


def _max_clones(sizes: tuple[int, ...], per_clone: int) -> int:
    return math.ceil(max(sizes) / max(1, per_clone)) + 1


async def _seed(
    session: Session, template: Template, max_clones: int, first: int, last: int
) -> dict[str, Any]:
    count = (last - first + 1) * len(template.appeal_ids)
    session.say(f"\n==> seeding {count:,} appeals of history (clones {first}..{last})")
    await session.stop_reviewers()
    await session.audit.pause()
    session.say("  stopping the services (seeding writes their stores)")
    await asyncio.to_thread(session.stack.stop_services)
    began = time.monotonic()
    template_file = session.stack.state_dir / "template.bson"
    await asyncio.to_thread(template_file.write_bytes, template.to_bytes(max_clones))
    seeder = await session.child(
        "seed-audit", ["bench.seeding.audit_seeder", str(template_file), str(first), str(last)]
    )
    token_map = template.token_map(max_clones)
    prepared, skipped = prepare(template, token_map)
    cloner = Cloner(session.client, prepared)
    cloning = asyncio.create_task(cloner.clone(token_map, range(first, last + 1)))
    audit_state: dict[str, Any] = {}
    following = asyncio.create_task(_follow(seeder, audit_state))
    while not (cloning.done() and following.done()):
        await asyncio.wait({cloning, following}, timeout=1.0)
        elapsed = time.monotonic() - began
        progress = cloner.progress
        session.say(
            f"  [seed] {elapsed:5.0f}s  clones {progress.clones_done}/{last - first + 1}  "
            f"documents {progress.documents:,} ({progress.documents / elapsed:,.0f}/s)  "
            f"audit entries {audit_state.get('entries', 0):,}"
        )
    cloning.result()
    following.result()
    await session.stop_child("seed-audit")
    if not audit_state.get("done"):
        raise RuntimeError(f"audit seeding did not finish{seeder.tail()}")
    seconds = time.monotonic() - began
    session.say(f"  seeded in {seconds:.0f}s; starting the services")
    await asyncio.to_thread(session.stack.start_services)
    slot = await session.audit.resume_at_end()
    return {
        "appeals": count,
        "seconds": round(seconds, 1),
        "documents": cloner.progress.documents,
        "documents_by_collection": dict(cloner.progress.by_collection),
        "duplicate_documents": cloner.progress.duplicates,
        "left_out_documents": dict(skipped),
        "audit_entries": audit_state.get("entries"),
        "audit_duplicates": audit_state.get("duplicates"),
        "audit_log_size": slot,
    }


async def _follow(child: Child, state: dict[str, Any]) -> None:
    while (line := await child.read()) is not None:
        state.update(line)
        if line.get("done"):
            return
    if not state.get("done"):
        raise RuntimeError(f"{child.name} ended early{child.tail()}")
