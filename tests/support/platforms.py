"""A fifth platform for the platform registry's tests: declared once, in a file of its own."""

from __future__ import annotations

from pathlib import Path

import yaml

from appeals import platforms

# Not in the contracts' enum: its number travels in the open protobuf enum.
FIFTH = {
    "name": "threads",
    "value": 5,
    "display_name": "Threads",
    "channel": "threads_inbox",
    "oversight_board": True,
}


def shipped() -> list[dict[str, object]]:
    """The shipped declarations, as written in platforms.yaml."""
    declared: list[dict[str, object]] = yaml.safe_load(platforms.DEFAULT_FILE.read_text())[
        "platforms"
    ]
    return declared


def declaration_file(folder: Path, *extra: dict[str, object]) -> Path:
    """A platforms file in ``folder``: the shipped platforms and ``extra`` (default: FIFTH)."""
    path = folder / "platforms.yaml"
    path.write_text(yaml.safe_dump({"platforms": [*shipped(), *(extra or (FIFTH,))]}))
    return path
