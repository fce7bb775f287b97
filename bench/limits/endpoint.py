"""The bare endpoint: the least any submit API must do, as the limit intake is judged against.

    python -m bench.limits.endpoint BOOTSTRAP TOPIC PORT

A FastAPI app in its own uvicorn process (as intake runs) with one route, ``POST /v1/appeals``:
validate the body with intake's own schema (``AppealIn``), turn it into the same protobuf, publish
it idempotently with ``acks=all`` (the services' producer settings) and answer 202 once the
broker acknowledged. No authentication, idempotency, eligibility, store or tracing.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.intake.schemas import AppealIn


def create_app(bootstrap: str, topic: str) -> FastAPI:
    producers: list[AIOKafkaProducer] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The services' producer settings (appeals_runtime.kafka.producer); made here, inside
        # the server's event loop, as aiokafka requires.
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=2
        )
        await producer.start()
        producers.append(producer)
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/appeals", status_code=202)
    async def submit(body: AppealIn) -> JSONResponse:
        appeal_id = "ap_" + uuid.uuid4().hex[:26]
        await producers[0].send_and_wait(
            topic, value=body.to_proto().SerializeToString(), key=appeal_id.encode()
        )
        return JSONResponse({"appeal_id": appeal_id, "status": "received"}, status_code=202)

    return app


def main() -> None:
    bootstrap, topic, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    uvicorn.run(
        create_app(bootstrap, topic),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
