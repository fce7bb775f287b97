"""Measuring the limits on the bench's broker: the relay chain, the bare endpoint and Kafka's
``ProducerPerformance``, each in processes of its own (``relay.py``, ``endpoint.py``,
``producer_perf.py``), before any load, while the pipeline is idle."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import httpx

from appeals_devstack.paths import kafka_libs_dir
from appeals_devstack.processes import free_port
from bench.children import Child
from bench.limits import producer_perf
from bench.stack import BARE_ENDPOINT_TOPIC, PRODUCER_PERF_TOPIC, RELAY_TOPICS
from bench.stats import rate, summarise

if TYPE_CHECKING:
    from bench.session import Session


async def measure(session: Session) -> dict[str, Any]:
    session.say("\n==> limits on the same broker")
    relay = await _relay_chain(session)
    session.say(f"  relay chain (2 hops): {relay['messages_per_s']:,.1f} messages/s")
    bare = await _bare_endpoint(session)
    session.say(f"  bare endpoint: {bare['accepted_per_s']:,.1f} accepted/s")
    perf = await _producer_performance(session)
    if perf.get("records_per_s") is not None:
        session.say(f"  ProducerPerformance: {perf['records_per_s']:,.0f} records/s")
    return {"relay_chain": relay, "bare_endpoint": bare, "producer_performance": perf}


async def _relay_chain(session: Session) -> dict[str, Any]:
    bootstrap = session.stack.infra.kafka_bootstrap_servers
    first, second = RELAY_TOPICS
    sink = await session.child(
        "relay-sink", ["bench.limits.relay", "sink", bootstrap, second, "bench-relay-sink"]
    )
    relay = await session.child(
        "relay", ["bench.limits.relay", "relay", bootstrap, first, second, "bench-relay"]
    )
    try:
        await sink.expect("ready", wait_s=60)
        await relay.expect("ready", wait_s=60)
        producer = await session.child(
            "relay-producer",
            ["bench.limits.relay", "producer", bootstrap, first,
             str(session.options.limits_s), str(session.options.record_size)],
        )  # fmt: skip
        sent = await producer.expect("sent", wait_s=session.options.limits_s + 60)
        await session.stop_child("relay-producer")
        received, last = 0, sent["first"]
        deadline = time.monotonic() + 60
        while received < sent["sent"] and time.monotonic() < deadline:
            line = await sink.expect("received", wait_s=10)
            received, last = line["received"], line["last"]
    finally:
        await session.stop_child("relay")
        await session.stop_child("relay-sink")
    seconds = last - sent["first"] if received else 0.0
    return {
        "hops": 2,
        "sent": sent["sent"],
        "received": received,
        "seconds": round(seconds, 2),
        "messages_per_s": rate(received, seconds),
        "record_size": session.options.record_size,
    }


async def _bare_endpoint(session: Session) -> dict[str, Any]:
    port = free_port()
    await session.child(
        "bare-endpoint",
        ["bench.limits.endpoint", session.stack.infra.kafka_bootstrap_servers,
         BARE_ENDPOINT_TOPIC, str(port)],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_http(f"{url}/healthz", session.children["bare-endpoint"])
        command = {
            "op": "closed",
            "step": "bare-endpoint",
            "concurrency": session.options.concurrency,
            "duration": session.options.limits_s,
            "url": f"{url}/v1/appeals",
        }
        driven = await session.drive(command, label="bare endpoint", offered=None,
                                   pipeline=False)  # fmt: skip
    finally:
        await session.stop_child("bare-endpoint")
    answered = [o for o in driven.outcomes if o[3] == 202]
    window = max((o[1] + o[2] / 1000 for o in answered), default=0) - min(
        (o[1] for o in driven.outcomes), default=0
    )
    return {
        "concurrency": session.options.concurrency,
        "sent": driven.done["sent"],
        "accepted": len(answered),
        "statuses": driven.done["statuses"],
        "accepted_per_s": rate(len(answered), window),
        "latency_ms": summarise(o[2] for o in answered),
    }


async def _producer_performance(session: Session) -> dict[str, Any]:
    args = producer_perf.command(
        kafka_libs_dir(),
        session.stack.infra.kafka_bootstrap_servers,
        PRODUCER_PERF_TOPIC,
        records=session.options.perf_records,
        size=session.options.record_size,
    )
    child = await session.child("producer-performance", args, python_module=False)
    try:
        output = await child.read_all(wait_s=300)
    finally:
        await session.stop_child("producer-performance")
    try:
        found = producer_perf.parse(output)
    except ValueError as error:
        session.say(f"  ProducerPerformance gave no summary: {error}")
        return {"records_per_s": None, "error": str(error)}
    return {**found.__dict__, "record_size": session.options.record_size}


async def _wait_http(url: str, child: Child, wait_s: float = 60) -> None:
    deadline = time.monotonic() + wait_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if child.process.returncode is not None:
                raise RuntimeError(f"{child.name} exited{child.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} not answering after {wait_s:.0f}s{child.tail()}")
