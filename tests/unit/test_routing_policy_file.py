"""The routing policy file: validated at load with errors naming the bad key, reloaded on change."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from appeals.v1 import appeal_pb2
from services.routing import policy
from services.routing.policy_file import DEFAULT_POLICY_FILE, PolicyError, PolicySource, load_policy


def shipped_data() -> dict[str, object]:
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    assert isinstance(data, dict)
    return data


def write(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error_for(tmp_path: Path, data: dict[str, object]) -> str:
    with pytest.raises(PolicyError) as raised:
        load_policy(write(tmp_path / "policy.yaml", data))
    return str(raised.value)


def test_the_shipped_policy_is_valid() -> None:
    loaded = load_policy(DEFAULT_POLICY_FILE)
    assert loaded.default_queue == "standard"


def test_a_misspelt_key_is_named(tmp_path: Path) -> None:
    data = shipped_data()
    data["rules"][0]["when"]["platfroms"] = ["facebook"]  # type: ignore[index]
    assert "rules[0].when.platfroms: Extra inputs are not permitted" in error_for(tmp_path, data)


def test_a_bad_value_is_named_with_its_path(tmp_path: Path) -> None:
    data = shipped_data()
    data["relaxation"][1]["after"] = "soon"  # type: ignore[index]
    assert "relaxation[1].after: " in error_for(tmp_path, data)
    assert "'soon' is not a duration" in error_for(tmp_path, data)


def test_cross_references_are_checked(tmp_path: Path) -> None:
    data = shipped_data()
    data["rules"][2]["queue"] = "nowhere"  # type: ignore[index]
    data["relaxation"][0]["relax"] = ["language"]  # type: ignore[index]
    data["sla"]["on_breach"]["escalate_to"] = "elsewhere"  # type: ignore[index]
    message = error_for(tmp_path, data)
    assert "rules[2].queue: unknown queue 'nowhere'" in message
    assert "relaxation[0].relax: ['language'] are mandatory_skills" in message
    assert "sla.on_breach.escalate_to: unknown queue 'elsewhere'" in message


def test_unreadable_or_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(broken)


def test_a_changed_file_is_reloaded_and_a_bad_change_keeps_the_policy_in_force(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "policy.yaml", shipped_data())
    source = PolicySource.load(path)
    assert not source.reload_if_changed()  # unchanged

    changed = shipped_data()
    changed["default_queue"] = "senior"
    write(path, changed)
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))  # mtime moves even within one tick
    assert source.reload_if_changed()
    facts = policy.AppealFacts(
        appeal_pb2.SubmissionFacts(locale="de-DE"), received_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert policy.route(source.current, facts).queue == "senior.de"

    path.write_text("version: 2\n")
    os.utime(path, ns=(1, 3_000_000_000_000_000_000))
    assert not source.reload_if_changed()
    assert source.current.default_queue == "senior"  # the last valid policy stays
