"""Signed checkpoints as files outside the store: the anchor a store-level rewrite cannot reach.

One file per checkpoint, ``<dir>/<tree size, 12 digits>.checkpoint`` holding the signed note, and
``<dir>/checkpoint`` holding the newest (the name C2SP tlog-tiles logs serve it under). Written
atomically (temporary file, then rename). In production the directory is a mounted volume or a
synced object-store path that the store's operators cannot rewrite; witnesses can fetch it too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from appeals_proofs.checkpoints import SignedCheckpoint
from services.audit.log.entries import KEY_DIGITS

LATEST = "checkpoint"
SUFFIX = ".checkpoint"


def _write_atomically(path: Path, text: str) -> None:
    descriptor, aside = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(aside, path)
    except BaseException:
        Path(aside).unlink(missing_ok=True)
        raise


def write(directory: Path, signed: SignedCheckpoint) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{signed.size:0{KEY_DIGITS}d}{SUFFIX}"
    _write_atomically(path, signed.note)
    newest = _size_of(newest_note(directory))
    if newest is None or newest <= signed.size:
        _write_atomically(directory / LATEST, signed.note)
    return path


def _size_of(note: str | None) -> int | None:
    """The tree size a note's body names (its second line); None if it names none."""
    lines = (note or "").split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else None


def sizes(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return [
        int(path.stem)
        for path in directory.glob(f"*{SUFFIX}")
        if path.stem.isdigit() and len(path.stem) == KEY_DIGITS
    ]


def notes(directory: Path) -> list[str]:
    """Every checkpoint note in the directory (unverified: callers open them with the key)."""
    return [
        (directory / f"{size:0{KEY_DIGITS}d}{SUFFIX}").read_text(encoding="utf-8")
        for size in sorted(sizes(directory))
    ]


def newest_note(directory: Path) -> str | None:
    """The newest note: the ``checkpoint`` file (one read, however many notes the directory
    holds), or, where that is missing, the largest numbered one."""
    latest = directory / LATEST
    if latest.is_file():
        return latest.read_text(encoding="utf-8")
    found = sizes(directory)
    if not found:
        return None
    return (directory / f"{max(found):0{KEY_DIGITS}d}{SUFFIX}").read_text(encoding="utf-8")
