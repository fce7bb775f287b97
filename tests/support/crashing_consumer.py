"""A consumer process for the redelivery test (``tests/integration/test_consumer_runner.py``,
which runs this file as a script): handles one message, then dies or finishes.

With ``crash`` it applies the effect and then exits abruptly (as a kill would leave it), before
the runner could commit. With ``finish`` it stops cleanly after the first message it handles, or
after a few idle seconds when there is nothing to handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid

from appeals.topics import Topic
from appeals.v1 import events_pb2
from appeals_runtime import store
from appeals_runtime.kafka.consumer import ConsumerRunner, InboundMessage
from appeals_runtime.kafka.producer import EventProducer

IDLE_STOP_S = 6.0


async def main(
    bootstrap: str, mongodb_url: str, db_name: str, topic_name: str, group: str, mode: str
) -> None:
    client = store.create_client(mongodb_url, app_name="crashing-consumer")
    db = client[db_name]
    await store.ensure_indexes(db, [store.IndexSpec("effects", [("event_id", 1)], unique=True)])
    producer = EventProducer(bootstrap, client_id="crashing-consumer")
    await producer.start()
    topic = Topic(topic_name, events_pb2.AppealEvent, lambda e: e.appeal_id, "appeal_id", "test")
    handled = asyncio.Event()

    async def handle(message: InboundMessage[events_pb2.AppealEvent]) -> None:
        event_id = message.payload.event_id
        await db.deliveries.insert_one({"_id": uuid.uuid4().hex, "event_id": event_id})
        # The effect and its dedup key are one document: applying twice is a detectable no-op.
        await store.insert_once(
            db.effects, {"event_id": event_id, "appeal_id": message.payload.appeal_id}
        )
        if mode == "crash":
            os._exit(137)
        handled.set()

    runner = ConsumerRunner(
        name="crashing",
        bootstrap_servers=bootstrap,
        group_id=group,
        topics=[topic],
        handler=handle,
        producer=producer,
    )
    task = asyncio.create_task(runner.run())
    await runner.started.wait()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(handled.wait(), IDLE_STOP_S)
    await runner.stop()
    await task
    await producer.stop()
    await client.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
