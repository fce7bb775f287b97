"""The one way services publish to Kafka: idempotent, acks=all, trace context in the headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from google.protobuf.message import Message
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Setter
from opentelemetry.trace import SpanKind

from appeals.topics import Topic
from appeals_runtime import metrics, tracing
from appeals_runtime.errors import PublishError
from appeals_runtime.kafka import headers as h

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
_send_duration = metrics.histogram(metrics.MESSAGING_SEND_DURATION)


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
        self._bootstrap_servers = bootstrap_servers
        self._producer = self._new_producer()
        self._replacing = asyncio.Lock()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            request_timeout_ms=int(self._publish_timeout_s * 1000),
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def _replace_producer(self, broken: AIOKafkaProducer) -> None:
        """Start over with a new producer id after a fatal idempotence error.

        aiokafka's idempotent producer cannot recover from e.g. OutOfOrderSequenceNumber (seen
        when the broker restarts while batches are in flight): every later send fails. A fresh
        producer gets a fresh id and sequence; duplicates this may cause are harmless because
        event ids are stable and every consumer deduplicates them.
        """
        async with self._replacing:
            if self._producer is not broken:
                return  # another publish already replaced it
            log.warning(
                "replacing the Kafka producer after a fatal error",
                extra={"client": self._client_id},
            )
            replacement = self._new_producer()
            await replacement.start()
            self._producer = replacement
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broken.stop(), timeout=self._publish_timeout_s)

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
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic.name,
            "messaging.kafka.message.key": key,
            "messaging.client.id": self._client_id,
        }
        if "payload" in message.DESCRIPTOR.oneofs_by_name:  # an event: which one
            attributes[tracing.EVENT_TYPE] = message.WhichOneof("payload") or "unknown"
        with tracer.start_as_current_span(
            f"send {topic.name}", kind=SpanKind.PRODUCER, attributes=attributes
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
        producer = self._producer
        started = time.perf_counter()
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic_name,
        }
        try:
            return await asyncio.wait_for(
                producer.send_and_wait(topic_name, value=value, key=key, headers=headers),
                timeout=self._publish_timeout_s,
            )
        except TimeoutError as error:
            attributes["error.type"] = "timeout"
            raise PublishError(f"broker did not acknowledge a record on {topic_name}") from error
        except KafkaError as error:
            attributes["error.type"] = type(error).__qualname__
            # Every broker-side failure means "not acknowledged", which callers treat alike.
            if not error.retriable and not isinstance(error, KafkaTimeoutError):
                with contextlib.suppress(Exception):
                    await self._replace_producer(producer)
            raise PublishError(f"publish to {topic_name} failed: {error!r}") from error
        finally:
            _send_duration.record(time.perf_counter() - started, attributes)
