"""Intake's listing of the appeals it acknowledged, by reception time, on the real broker and
store, and reconciliation of the audit log against it (issue 13, item 6): complete whatever the
topics still retain, paged, read by ``_id`` only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appeals import topics
from appeals.events import new_event
from appeals.v1 import events_pb2
from appeals_runtime import store
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.audit.exports import sources
from services.audit.exports.acknowledgements import IntakeAcknowledgements, IntakeLookup
from services.audit.exports.reconciliation import Window
from services.intake import identity
from services.intake.consumer import StatusProjection
from services.intake.received_index import RECEIVED_INDEX
from tests.support.audit import lifecycle, new_appeal_id, open_audit, record
from tests.support.intake_app import IntakeUnderTest, start_intake

pytestmark = pytest.mark.integration

# A window of its own, far from any other test's appeals.
T0 = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)


async def acknowledge(intake: IntakeUnderTest, appeal_id: str, at: datetime) -> None:
    """What the status projection does when the appeal's submitted event comes by."""
    event = new_event(
        event_id=identity.submitted_event_id(appeal_id),
        appeal_id=appeal_id,
        producer="intake",
        occurred_at=at,
        submitted=events_pb2.AppealSubmitted(channel="rest"),
    )
    message = InboundMessage(topics.APPEAL_LIFECYCLE.name, 0, 0, None, event, {}, 0)
    await StatusProjection(intake.repository, intake.intake.erasures).handle(message)


async def listed(
    intake: IntakeUnderTest, since: datetime, until: datetime, limit: int
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params = {
            "received_after": since.isoformat(),
            "received_before": until.isoformat(),
            "limit": str(limit),
            **({"cursor": cursor} if cursor else {}),
        }
        response = await intake.client.get(
            "/v1/appeals", params=params, headers=intake.headers(role="ops")
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append([item["appeal_id"] for item in page["appeals"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_a_window_is_listed_page_by_page_from_the_minutes_it_spans(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    intake = await start_intake(db, producer, tmp_path)
    moments = [
        T0 + timedelta(seconds=30),
        T0 + timedelta(seconds=45),
        T0 + timedelta(minutes=1, seconds=10),
        T0 + timedelta(minutes=1, seconds=20),
        T0 + timedelta(minutes=3),
    ]
    ids = [f"ap_rcv{i}_{new_appeal_id()[3:]}" for i in range(len(moments))]
    for appeal_id, at in zip(ids, moments, strict=True):
        await acknowledge(intake, appeal_id, at)
    await acknowledge(intake, ids[2], moments[2])  # a redelivery lists it once

    since, until = T0 + timedelta(seconds=40), T0 + timedelta(minutes=3)
    pages = await listed(intake, since, until, limit=2)
    assert [len(page) for page in pages] == [2, 1]
    middle = sorted(ids[1:2]) + sorted(ids[2:4])
    assert [a for page in pages for a in page] == middle
    assert await listed(intake, T0, T0 + timedelta(minutes=10), limit=1000) == [
        sorted(ids[:2]) + sorted(ids[2:4]) + ids[4:]
    ]
    # One document per ten seconds, each found by _id.
    slots = await db[RECEIVED_INDEX].find({"_id": {"$in": ["2024-05-06T10:00:40"]}}).to_list()
    assert {e["id"] for e in slots[0]["entries"]} == {ids[1]}


async def test_the_listing_is_for_ops_and_refuses_what_it_cannot_answer_well(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    intake = await start_intake(db, producer, tmp_path)
    window = {
        "received_after": T0.isoformat(),
        "received_before": (T0 + timedelta(hours=1)).isoformat(),
    }
    surface = await intake.client.get("/v1/appeals", params=window, headers=intake.headers())
    assert surface.status_code == 403
    ops = intake.headers(role="ops")
    malformed = await intake.client.get(
        "/v1/appeals", params={**window, "cursor": "nonsense"}, headers=ops
    )
    assert malformed.status_code == 400, malformed.text
    assert malformed.headers["content-type"].startswith("application/problem+json")
    assert [p["name"] for p in malformed.json()["invalid_params"]] == ["cursor"]
    # Well-formed windows this listing does not serve: 422 with a code (no schema can say it).
    for params, code in (
        ({**window, "received_before": (T0 + timedelta(days=40)).isoformat()}, "window_too_long"),
        ({**window, "received_before": T0.isoformat()}, "empty_window"),
    ):
        response = await intake.client.get("/v1/appeals", params=params, headers=ops)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == code


async def test_reconciliation_against_intakes_records_names_both_sides(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    intake = await start_intake(db, producer, tmp_path / "intake")
    audit = await open_audit(db, tmp_path / "audit")
    start = T0 + timedelta(days=1)
    kept, lost, invented = (new_appeal_id() for _ in range(3))
    for appeal_id in (kept, lost):
        await acknowledge(intake, appeal_id, start)
    await record(audit, *lifecycle(kept, start=start))
    await record(audit, lifecycle(invented, start=start)[0])  # intake never acknowledged it
    window = Window(start - timedelta(minutes=1), start + timedelta(minutes=1))
    token = intake.token(role="ops")

    result = await sources.reconcile_log(
        audit.service.log,
        IntakeAcknowledgements("http://intake", token, client=intake.client),
        window,
    )

    assert result.missing_from_log == [lost]
    assert result.not_acknowledged == [invented]
    # Asked about the appeal only the log has, intake does not know it either.
    assert not await IntakeLookup("http://intake", token, client=intake.client)(invented)
