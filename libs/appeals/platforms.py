"""The platforms the pipeline serves, declared once (``platforms.yaml``).

Every table that differs per platform derives from :data:`PLATFORMS`: the names and enum values
(``vocabulary``), intake's schema and rules, the restore-commands topics (``topics``), the
notification channels and their provider settings, the statement of reasons and the CLI.

``APPEALS_PLATFORMS_FILE`` names another declaration file (same shape): a deployment that serves
a platform before the contracts name it (protobuf enums are open, so its number travels as is),
or a test that proves a fifth platform is carried end to end. Every process of one pipeline must
read the same file. A malformed file stops the process at import, naming the entry.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FILE_VARIABLE = "APPEALS_PLATFORMS_FILE"
DEFAULT_FILE = Path(__file__).with_name("platforms.yaml")
# Channels every platform shares: not a platform's own.
SHARED_CHANNELS = frozenset({"email", "webhook"})
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
_FIELDS = {"name", "value", "display_name", "channel", "oversight_board"}


@dataclass(frozen=True)
class Platform:
    name: str
    value: int
    display_name: str
    channel: str
    oversight_board: bool = False

    @property
    def provider_variables(self) -> tuple[str, str]:
        """The environment variables of its notification provider: endpoint URL and token."""
        prefix = f"NOTIFICATIONS_{self.name.upper()}"
        return f"{prefix}_URL", f"{prefix}_TOKEN"


class PlatformsFileError(ValueError):
    pass


def load(path: Path) -> tuple[Platform, ...]:
    """The platforms declared in ``path``, checked: names, values and channels unique."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PlatformsFileError(f"{path}: {error}") from error
    entries = document.get("platforms") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise PlatformsFileError(f"{path}: needs a non-empty list `platforms`")
    platforms = tuple(_platform(path, index, entry) for index, entry in enumerate(entries))
    for attribute in ("name", "value", "channel"):
        seen = [getattr(p, attribute) for p in platforms]
        repeated = sorted({str(v) for v in seen if seen.count(v) > 1})
        if repeated:
            raise PlatformsFileError(f"{path}: {attribute} declared twice: {', '.join(repeated)}")
    return platforms


def _platform(path: Path, index: int, entry: Any) -> Platform:
    where = f"{path}: platforms[{index}]"
    if not isinstance(entry, dict):
        raise PlatformsFileError(f"{where} must be a mapping")
    unknown, missing = set(entry) - _FIELDS, _FIELDS - {"oversight_board"} - set(entry)
    if unknown or missing:
        raise PlatformsFileError(
            f"{where}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}"
        )
    name, value, channel = entry["name"], entry["value"], entry["channel"]
    display_name, board = entry["display_name"], entry.get("oversight_board", False)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PlatformsFileError(f"{where}.name must be snake_case, 2 to 31 characters")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise PlatformsFileError(f"{where}.value must be a positive enum number")
    if not isinstance(channel, str) or not _NAME.match(channel) or channel in SHARED_CHANNELS:
        raise PlatformsFileError(
            f"{where}.channel must be snake_case and not one of {sorted(SHARED_CHANNELS)}"
        )
    if not isinstance(display_name, str) or not display_name.strip():
        raise PlatformsFileError(f"{where}.display_name must be a non-empty string")
    if not isinstance(board, bool):
        raise PlatformsFileError(f"{where}.oversight_board must be true or false")
    return Platform(name, value, display_name, channel, board)


def declared_file() -> Path:
    return Path(os.environ.get(FILE_VARIABLE) or DEFAULT_FILE)


PLATFORMS: tuple[Platform, ...] = load(declared_file())
NAMES: tuple[str, ...] = tuple(p.name for p in PLATFORMS)
# Each platform's own notification channel, by platform name.
CHANNELS: dict[str, str] = {p.name: p.channel for p in PLATFORMS}
OVERSIGHT_BOARD: frozenset[str] = frozenset(p.name for p in PLATFORMS if p.oversight_board)
