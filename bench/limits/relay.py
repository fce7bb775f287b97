"""The bare relay chain: what the broker and aiokafka carry with the pipeline's delivery rules.

    python -m bench.limits.relay producer BOOTSTRAP TOPIC SECONDS SIZE
    python -m bench.limits.relay relay BOOTSTRAP FROM_TOPIC TO_TOPIC GROUP
    python -m bench.limits.relay sink BOOTSTRAP TOPIC GROUP

Three processes, like the pipeline's hops (intake publishes, routing consumes and publishes,
audit consumes): producer → topic → relay → topic → sink. Every producer is idempotent with
``acks=all`` and awaits each send before the next (what a service does per event); consumers
handle one record at a time and commit only what they handled (every 0.2 s, as the services'
consumer runner does). No store, no decoding, no tracing: the pipeline cannot be faster than
this, so its end-to-end rate is judged as a fraction of this chain's messages per second.

Reports JSON lines: ``ready`` once a consumer has its partitions, the producer's ``sent`` (count,
first and last send as wall-clock seconds), the sink's ``received`` every half second.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.observers import topic_partitions

COMMIT_INTERVAL_S = 0.2
REPORT_INTERVAL_S = 0.5


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _producer(bootstrap: str) -> AIOKafkaProducer:
    # The services' delivery settings (appeals_runtime.kafka.producer) without their linger:
    # each send here is awaited before the next, so there is never a second record to wait
    # for, and lingering would only add its 2 ms to every message (measured 7 Dec: the chain
    # carried about 280 messages/s with it, as if the broker were that slow).
    return AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")


async def produce(bootstrap: str, topic: str, seconds: float, size: int) -> None:
    producer = _producer(bootstrap)
    await producer.start()
    try:
        value = b"x" * size
        sent, first = 0, time.time()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await producer.send_and_wait(topic, value=value, key=str(sent).encode())
            sent += 1
        _say(event="sent", sent=sent, first=first, last=time.time())
    finally:
        await producer.stop()


async def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    # Assigned rather than subscribed: no rebalance to wait for; commits still go to the group.
    consumer.assign(await topic_partitions(bootstrap, topic))
    return consumer


async def consume(
    bootstrap: str, topic: str, group: str, forward_to: str | None, stop: asyncio.Event
) -> None:
    consumer = await _consumer(bootstrap, topic, group)
    producer = _producer(bootstrap) if forward_to else None
    if producer is not None:
        await producer.start()
    received, last_seen = 0, 0.0
    _say(event="ready")
    last_commit = last_report = time.monotonic()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            for records in batches.values():
                for record in records:
                    if producer is not None and forward_to is not None:
                        await producer.send_and_wait(forward_to, value=record.value, key=record.key)
                    received += 1
                    last_seen = time.time()
            now = time.monotonic()
            if now - last_commit >= COMMIT_INTERVAL_S:
                await consumer.commit()  # what getmany returned was handled above
                last_commit = now
            if forward_to is None and now - last_report >= REPORT_INTERVAL_S:
                _say(event="received", received=received, last=last_seen)
                last_report = now
    finally:
        await consumer.commit()
        if forward_to is None:
            _say(event="received", received=received, last=last_seen)
        if producer is not None:
            await producer.stop()
        await consumer.stop()


async def _until_stopped(role: str, args: list[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if role == "relay":
        await consume(args[0], args[1], args[3], args[2], stop)
    else:
        await consume(args[0], args[1], args[2], None, stop)


def main() -> None:
    role, args = sys.argv[1], sys.argv[2:]
    if role == "producer":
        asyncio.run(produce(args[0], args[1], float(args[2]), int(args[3])))
    else:
        asyncio.run(_until_stopped(role, args))


if __name__ == "__main__":
    main()
