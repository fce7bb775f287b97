"""The platform registry: one declaration per platform, from which every per-platform table of
the pipeline derives (appeals/platforms.yaml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appeals import platforms, topics, vocabulary
from appeals.v1 import appeal_pb2
from appeals_cli.main import build_parser
from services.intake import validation
from services.intake.schemas import AppealIn
from services.notifications import config, messages
from services.notifications.channels import directory
from services.notifications.channels.platforms import ADAPTERS, adapter_for
from services.routing.policy_file import DEFAULT_POLICY_FILE, load_policy
from tests.support.platforms import FIFTH, declaration_file

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_declaration_is_exactly_the_contracts_platforms() -> None:
    in_contract = {
        value.number: value.name.removeprefix("PLATFORM_").lower()
        for value in appeal_pb2.Platform.DESCRIPTOR.values
        if value.number != appeal_pb2.PLATFORM_UNSPECIFIED
    }
    assert {p.value: p.name for p in platforms.PLATFORMS} == in_contract


def test_every_per_platform_table_is_the_declaration() -> None:
    names = set(platforms.NAMES)
    channels = {p.channel for p in platforms.PLATFORMS}
    assert set(vocabulary.PLATFORMS) == names
    assert set(topics.PLATFORM_NAMES.values()) == names
    assert {topics.restore_commands_topic(p.value).name for p in platforms.PLATFORMS} == {
        f"appeals.restore-commands.{name}.v1" for name in names
    }
    schema = AppealIn.model_json_schema()
    assert set(schema["properties"]["platform"]["enum"]) == names
    assert channels | {"email", "webhook"} == validation.CONTACT_CHANNELS
    assert {p.name: p.channel for p in platforms.PLATFORMS} == config.PLATFORM_CHANNELS
    assert {directory.PREFERENCE_ALIASES[name] for name in names} == channels
    assert set(messages.PLATFORM_NAMES) == names
    assert {"facebook", "instagram"} == messages.OVERSIGHT_BOARD_PLATFORMS
    board = load_policy(DEFAULT_POLICY_FILE).escalation.oversight_board
    assert sorted(board.platforms) == ["facebook", "instagram"]
    assert {adapter_for(p).name for p in platforms.PLATFORMS} == channels == set(ADAPTERS)
    submit = build_parser().parse_args(["submit", "--platform", "horizon"])
    assert submit.platform == "horizon"


def _derived_with(path: Path) -> dict[str, object]:
    """What a process reading ``path`` (APPEALS_PLATFORMS_FILE) derives from it."""
    probe = """
import json
from appeals import topics, vocabulary
from services.intake import validation
from services.intake.schemas import AppealIn
from services.notifications import config, messages
from services.notifications.channels.platforms import adapter_for
from appeals import platforms
print(json.dumps({
    "vocabulary": vocabulary.PLATFORMS,
    "topics": sorted(topics.all_topic_names()),
    "schema": AppealIn.model_json_schema()["properties"]["platform"]["enum"],
    "contact_channels": sorted(validation.CONTACT_CHANNELS),
    "platform_channels": config.PLATFORM_CHANNELS,
    "display_names": messages.PLATFORM_NAMES,
    "board": sorted(messages.OVERSIGHT_BOARD_PLATFORMS),
    "adapters": {p.name: adapter_for(p).name for p in platforms.PLATFORMS},
}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, platforms.FILE_VARIABLE: str(path)},
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    derived: dict[str, object] = json.loads(done.stdout)
    return derived


def test_a_fifth_platform_declared_once_reaches_every_table(tmp_path: Path) -> None:
    derived = _derived_with(declaration_file(tmp_path))
    assert derived["vocabulary"] == {**vocabulary.PLATFORMS, "threads": 5}
    assert "appeals.restore-commands.threads.v1" in derived["topics"]  # type: ignore[operator]
    assert "threads" in derived["schema"]  # type: ignore[operator]
    assert "threads_inbox" in derived["contact_channels"]  # type: ignore[operator]
    assert derived["platform_channels"] == {**config.PLATFORM_CHANNELS, "threads": "threads_inbox"}
    assert derived["display_names"] == {**messages.PLATFORM_NAMES, "threads": "Threads"}
    assert derived["board"] == ["facebook", "instagram", "threads"]
    # No adapter of its own yet: the generic shape, under its own channel name.
    assert derived["adapters"] == {**{p.name: p.channel for p in platforms.PLATFORMS},
                                   "threads": "threads_inbox"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"name": "Threads"}, "snake_case"),
        ({"value": 0}, "positive enum number"),
        ({"value": 1}, "value declared twice: 1"),
        ({"channel": "email"}, "not one of"),
        ({"channel": "instagram_dm"}, "channel declared twice"),
        ({"display_name": ""}, "display_name"),
        ({"oversight_board": "yes"}, "true or false"),
        ({"colour": "blue"}, "unknown fields ['colour']"),
    ],
)
def test_a_malformed_declaration_is_refused_naming_the_entry(
    tmp_path: Path, change: dict[str, object], complaint: str
) -> None:
    path = declaration_file(tmp_path, FIFTH | change)
    with pytest.raises(platforms.PlatformsFileError) as refused:
        platforms.load(path)
    assert complaint in str(refused.value)
    assert "platforms[4]" in str(refused.value) or "declared twice" in str(refused.value)


def test_a_missing_or_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(platforms.PlatformsFileError):
        platforms.load(tmp_path / "absent.yaml")
    (tmp_path / "empty.yaml").write_text("platforms: []\n")
    with pytest.raises(platforms.PlatformsFileError, match="non-empty"):
        platforms.load(tmp_path / "empty.yaml")
