"""Where the local stack keeps things: versions, per-user caches, per-checkout runtime state."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_LOCAL = REPO_ROOT / "deploy" / "local"
VERSIONS_FILE = DEPLOY_LOCAL / "versions.env"
# Runtime state of `make run`/`make up` for this checkout (git-ignored): data, logs, pid files.
STATE_DIR = Path(os.environ.get("APPEALS_STATE_DIR", REPO_ROOT / ".local"))


def read_versions() -> dict[str, str]:
    versions = {}
    for raw_line in VERSIONS_FILE.read_text().splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            versions[name.strip()] = value.strip()
    return versions


def cache_dir() -> Path:
    """Per-user cache shared by every clone, so a fresh clone reuses fetched jars and builds."""
    if "APPEALS_CACHE_DIR" in os.environ:
        return Path(os.environ["APPEALS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "appeals-pipeline"


def _recipe_digest(recipe: Path) -> str:
    """Same cache key as the Makefile: a digest of what fetches or builds the thing."""
    return hashlib.sha256(recipe.read_bytes()).hexdigest()[:10]


def kafka_libs_dir() -> Path:
    if "APPEALS_KAFKA_LIBS" in os.environ:
        return Path(os.environ["APPEALS_KAFKA_LIBS"])
    version = read_versions()["KAFKA_VERSION"]
    return cache_dir() / f"kafka-{version}-{_recipe_digest(DEPLOY_LOCAL / 'pom.xml')}" / "libs"


def ferretdb_binary() -> Path:
    if "APPEALS_FERRETDB_BIN" in os.environ:
        return Path(os.environ["APPEALS_FERRETDB_BIN"])
    version = read_versions()["FERRETDB_VERSION"]
    digest = _recipe_digest(DEPLOY_LOCAL / "build-ferretdb.sh")
    return cache_dir() / f"ferretdb-{version}-{digest}" / "ferretdb"
