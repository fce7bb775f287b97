"""The `appeals` command against the running pipeline: tokens, submit, status, agent, demo."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from appeals_devstack import devkeys
from appeals_runtime.auth import Role
from tests.e2e.conftest import Pipeline, appeals

pytestmark = pytest.mark.e2e


def test_tokens_are_printed_alone_on_the_last_line_and_verify(pipeline: Pipeline) -> None:
    verifier = devkeys.dev_verifier(pipeline.signing_key.parent / "jwks.json")
    surface = appeals(pipeline, "token", "surface", "whatsapp")
    agent = appeals(pipeline, "token", "agent", "alice", "--queues", "whatsapp.integrity.pt")
    ops = appeals(pipeline, "token", "ops")
    service = appeals(pipeline, "token", "service", "routing")
    for result in (surface, agent, ops, service):
        assert result.returncode == 0, result.stderr
    principal = verifier.verify(surface.stdout.strip().splitlines()[-1])
    assert (principal.role, principal.platforms) == (Role.SURFACE, frozenset({"whatsapp"}))
    alice = verifier.verify(agent.stdout.strip().splitlines()[-1])
    assert (alice.subject, alice.queues) == ("alice", frozenset({"whatsapp.integrity.pt"}))
    assert verifier.verify(ops.stdout.strip().splitlines()[-1]).role == Role.OPS
    routing = verifier.verify(service.stdout.strip().splitlines()[-1])
    assert (routing.subject, routing.role, routing.scopes) == (
        "routing",
        Role.SERVICE,
        frozenset({"particulars:read"}),
    )
    assert appeals(pipeline, "token", "surface").returncode != 0  # names no platform


def test_submit_status_and_an_automatic_reviewer(pipeline: Pipeline, tmp_path: Path) -> None:
    user_id = f"9{uuid.uuid4().int % 10**12}"  # this test's own appellant: it erases them
    body = {
        "platform": "horizon",
        "appellant": {"user_id": user_id},
        "subject": {"kind": "avatar", "id": "avatar-77"},
        "decision": {"id": "dec-cli", "policy": "harassment", "action": "restricted",
                     "automated": False, "decided_at": "2026-11-24T10:00:00Z",
                     "decided_by": "moderator-3"},
        "statement": "It was a joke between friends.",
        "locale": "en-GB",
        "country": "GB",
    }  # fmt: skip
    path = tmp_path / "appeal.json"
    path.write_text(json.dumps(body))
    submitted = appeals(pipeline, "submit", "--file", str(path))
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    appeal_id = json.loads(submitted.stdout)["appeal_id"]

    reviewed = appeals(pipeline, "agent", "carol", "--languages", "en", "--auto", "--count", "1",
                       timeout=90)  # fmt: skip
    assert reviewed.returncode == 0, reviewed.stdout + reviewed.stderr
    assert "carol decided 1 case(s)" in reviewed.stdout
    unregistered = appeals(pipeline, "agent", "dave", "--auto", "--count", "1")
    assert unregistered.returncode == 2  # a reviewer says which languages it reads
    assert "--languages" in unregistered.stderr

    status = appeals(pipeline, "status", appeal_id)
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["appeal_id"] == appeal_id

    # The person asks to be forgotten; their platform relays it.
    erased = appeals(pipeline, "erase", "--platform", "horizon", "--user-id", user_id, timeout=60)
    assert erased.returncode == 0, erased.stdout + erased.stderr
    assert json.loads(erased.stdout)["appeals_erased"] >= 1


def test_the_demo_moves_appeals_from_all_four_products_to_a_decision(pipeline: Pipeline) -> None:
    # All twelve samples: the reviewers also escalate, transfer, ask the appellant (who answers)
    # and partially overturn, and every appeal still ends decided. No chats here (they have
    # their own test, tests/e2e/test_demo_chats.py): the sample accounts' codes are limited.
    result = appeals(pipeline, "demo", "--appeals", "12", "--reviewers", "3", "--rate", "8",
                     "--seed", "7", "--chats", "0", timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("appeal ", 1)[1]
    rows = [line.split() for line in table.splitlines()[1:] if line.startswith("ap_")]
    assert len(rows) == 12
    assert {row[1] for row in rows} == {"facebook", "instagram", "whatsapp", "horizon"}
    assert all(row[2] == "decided" for row in rows), result.stdout
    assert {row[3] for row in rows} == {"upheld", "overturned", "partially_overturned"}, table
    output = result.stdout
    for step in (
        r"escalated ap_\w+ to senior\.en",
        r"transferred ap_\w+ to facebook\.specialist",
        r"asked the appellant of ap_\w+",
        r"appellant of ap_\w+ answered: 202",
    ):
        assert re.search(step, output), (step, output)  # fmt: skip
