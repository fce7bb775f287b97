"""Generates the Python protobuf, gRPC and mypy stub code from `protos/` into `libs/`.

The generated code is committed; `tests/unit/test_generated_code.py` regenerates it into a
temporary folder and fails when the committed copy is stale.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

from appeals_devstack.paths import REPO_ROOT

PROTO_ROOT = REPO_ROOT / "protos"
PACKAGE_DIR = Path("appeals") / "v1"
GENERATED_ROOT = REPO_ROOT / "libs"


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Write generated modules for every proto file under ``out_root``; return what was written."""
    target = out_root / PACKAGE_DIR
    target.mkdir(parents=True, exist_ok=True)
    well_known = Path(protoc.__file__).parent / "_proto"
    plugin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--plugin=protoc-gen-mypy={plugin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *[str(path.relative_to(PROTO_ROOT)) for path in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed; see the messages above")
    for package in (out_root / "appeals", target):
        (package / "__init__.py").touch()
    (out_root / "appeals" / "py.typed").touch()
    return sorted(p for p in target.iterdir() if p.is_file())


def regenerate() -> None:
    """Replace the committed generated code with a fresh generation."""
    target = GENERATED_ROOT / PACKAGE_DIR
    if target.exists():
        shutil.rmtree(target)
    for path in generate(GENERATED_ROOT):
        print(f"generated {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    regenerate()
