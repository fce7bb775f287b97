"""Admission control (appeals_runtime.admission): beyond its limit of requests in hand a
service answers 503 problem+json with Retry-After at once, never queues, and never refuses its
probes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from appeals_runtime.admission import AdmissionLimit, InHand, Overloaded
from appeals_runtime.http import PROBE_PATHS, PROBLEM_JSON, health_router, install_problem_handlers

LIMIT = 3


class Held:
    """An app whose /work requests wait until released (so they stay in hand)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.full = asyncio.Event()  # LIMIT requests are inside the app
        self.entered = 0
        self.app = FastAPI()
        install_problem_handlers(self.app)
        self.app.include_router(health_router({}))

        @self.app.post("/work")
        async def work() -> dict[str, str]:
            self.entered += 1
            if self.entered == LIMIT:
                self.full.set()
            await self.release.wait()
            return {"done": "yes"}

        @self.app.get("/fails")
        async def fails() -> None:
            raise RuntimeError("boom")

        self.app.add_middleware(AdmissionLimit, limit=LIMIT)

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://service")


async def test_the_request_beyond_the_limit_is_refused_at_once_and_the_rest_are_served() -> None:
    held = Held()
    async with held.client() as client:
        in_hand = [asyncio.create_task(client.post("/work")) for _ in range(LIMIT)]
        try:
            async with asyncio.timeout(5):
                await held.full.wait()
                refused = await client.post("/work", json={"ignored": True})
            assert refused.status_code == 503
            assert refused.headers["content-type"] == PROBLEM_JSON
            assert refused.headers["retry-after"] == "1"
            body = refused.json()
            assert body["status"] == 503 and body["title"] == "Service overloaded"
            assert held.entered == LIMIT, "a refused request never reaches the app"

            # Probes and the scrape are answered even while the service is full.
            for path in sorted(PROBE_PATHS):
                assert (await client.get(path)).status_code == 200, path
        finally:
            held.release.set()
        assert [r.status_code for r in await asyncio.gather(*in_hand)] == [200] * LIMIT
        assert (await client.post("/work")).status_code == 200


async def test_a_failed_request_gives_its_place_back() -> None:
    held = Held()
    held.release.set()
    async with held.client() as client:
        for _ in range(LIMIT + 2):
            assert (await client.get("/fails")).status_code == 500
        assert (await client.post("/work")).status_code == 200


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AdmissionLimit(FastAPI(), limit=0)


def test_a_place_is_held_for_the_block_and_given_back_even_when_it_fails() -> None:
    in_hand = InHand(1, channel="grpc")
    with (
        in_hand.admitted(),
        pytest.raises(Overloaded, match="More than 1 requests are in hand"),
        in_hand.admitted(),
    ):
        pass  # pragma: no cover - refused before the block
    with pytest.raises(RuntimeError), in_hand.admitted():
        raise RuntimeError("the request failed")
    assert in_hand.count == 0
    with in_hand.admitted():
        assert in_hand.count == 1
