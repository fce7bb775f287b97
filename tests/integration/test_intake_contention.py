"""A store too busy to write is answered 503 with Retry-After (problem+json), never a dropped
connection or a 500; reads go on being served meanwhile, and intake recovers by itself.

The busy store is real: the test takes SQLite's write lock on the test database's file, as a
long write by another connection would, so FerretDB's write waits out its busy timeout and
answers "database is locked (SQLITE_BUSY)". That takes FerretDB's timeout (tens of seconds).
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from tests.support.bodies import fresh_body
from tests.support.intake_app import IntakeUnderTest

pytestmark = pytest.mark.integration


async def test_a_store_held_busy_is_answered_503_with_retry_after_and_reads_go_on(
    intake: IntakeUnderTest, infra: Infrastructure, db: store.Database
) -> None:
    if infra.ferretdb is None:
        pytest.skip("needs the session's own FerretDB, whose SQLite write lock the test takes")
    earlier = await intake.submit(fresh_body())
    assert earlier.status_code == 202, earlier.text
    appeal_id = earlier.json()["appeal_id"]

    lock = sqlite3.connect(
        infra.ferretdb.data_dir / "sqlite" / f"{db.name}.sqlite", isolation_level=None
    )
    try:
        lock.execute("BEGIN IMMEDIATE")  # SQLite's one write lock, held until the rollback
        blocked = asyncio.create_task(intake.submit(fresh_body()))
        view = await intake.client.get(f"/v1/appeals/{appeal_id}", headers=intake.headers())
        busy = await blocked
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    assert view.status_code == 200  # readers are not held up by the writer
    assert busy.status_code == 503, busy.text
    assert busy.headers["content-type"] == "application/problem+json"
    assert int(busy.headers["retry-after"]) >= 1
    assert busy.json()["status"] == 503
    again = await intake.submit(fresh_body())
    assert again.status_code == 202, again.text
