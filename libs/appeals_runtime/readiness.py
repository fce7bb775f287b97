"""Whether a service's dependencies answer: one evaluation for every way it is asked (HTTP
``/readyz``, gRPC ``grpc.health.v1``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

# A check raises when its dependency (broker, store) does not answer.
ReadinessCheck = Callable[[], Awaitable[None]]
# How long one check may take before it counts as failed.
CHECK_TIMEOUT_S = 4.0
OK = "ok"


async def check_readiness(checks: Mapping[str, ReadinessCheck]) -> dict[str, str]:
    """Each check's result: ``ok``, or ``unavailable: <error type>``."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
            results[name] = OK
        except Exception as error:  # any failure means "not ready"
            results[name] = f"unavailable: {type(error).__name__}"
    return results


def all_ready(results: Mapping[str, str]) -> bool:
    return all(result == OK for result in results.values())
