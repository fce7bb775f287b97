"""The committed protobuf code matches what protos/ generates today."""

from __future__ import annotations

from pathlib import Path

from appeals_devstack import protogen


def test_committed_generated_code_is_not_stale(tmp_path: Path) -> None:
    fresh = {path.name: path.read_bytes() for path in protogen.generate(tmp_path)}
    committed_dir = protogen.GENERATED_ROOT / protogen.PACKAGE_DIR
    committed = {path.name: path.read_bytes() for path in committed_dir.iterdir() if path.is_file()}
    stale = sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )
    assert not stale, f"generated code is stale, run `make proto` and commit: {stale}"
