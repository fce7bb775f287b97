"""The one way services publish to Kafka: idempotent, acks=all, trace context in the headers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Setter
from opentelemetry.trace import SpanKind

from appeals_runtime.errors import PublishError
from appeals_runtime.kafka import headers as h
from appeals_runtime.topics import Topic

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class _HeaderSetter(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier.append((key, value.encode()))


class EventProducer:
    """Publishes protobuf messages to registry topics and waits for the broker's acknowledgement.

    ``publish`` returns only after every in-sync replica has the record (``acks="all"``), so an
    API may answer 2xx once it returns; it raises :class:`PublishError` when the broker does not
    acknowledge within the timeout, so the caller can answer 503 instead.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str,
        publish_timeout_s: float = 10.0,
    ) -> None:
        self._client_id = client_id
        self._publish_timeout_s = publish_timeout_s
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            request_timeout_ms=int(publish_timeout_s * 1000),
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def check_ready(self) -> None:
        """Raises when the broker cannot be reached (readiness probes)."""
        await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=3)

    async def publish(
        self,
        topic: Topic[Any],
        message: Message,
        *,
        headers: h.Headers | None = None,
    ) -> Any:
        """Publish ``message`` keyed by the topic's key; return the broker's record metadata."""
        key = topic.key(message)
        with tracer.start_as_current_span(
            f"send {topic.name}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic.name,
                "messaging.kafka.message.key": key,
                "messaging.client.id": self._client_id,
            },
        ):
            record_headers: h.Headers = list(headers or [])
            record_headers.append((h.SCHEMA, message.DESCRIPTOR.full_name.encode()))
            record_headers.append((h.PRODUCER, self._client_id.encode()))
            propagate.inject(record_headers, setter=_HeaderSetter())
            return await self.publish_raw(
                topic.name, key.encode(), message.SerializeToString(), record_headers
            )

    async def publish_raw(
        self, topic_name: str, key: bytes | None, value: bytes | None, headers: h.Headers
    ) -> Any:
        """Publish bytes as they are (dead-letter queues forward the original record)."""
        try:
            return await asyncio.wait_for(
                self._producer.send_and_wait(topic_name, value=value, key=key, headers=headers),
                timeout=self._publish_timeout_s,
            )
        except TimeoutError as error:
            raise PublishError(f"broker did not acknowledge a record on {topic_name}") from error
        except Exception as error:
            # aiokafka raises KafkaError subclasses for broker-side failures; all of them mean
            # "not acknowledged", which callers must treat the same way.
            if type(error).__module__.startswith("aiokafka"):
                raise PublishError(f"publish to {topic_name} failed: {error!r}") from error
            raise
