"""Where the local stack keeps things: versions, per-user caches, per-checkout runtime state."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_LOCAL = REPO_ROOT / "deploy" / "local"
VERSIONS_FILE = DEPLOY_LOCAL / "versions.env"
DEPLOY_PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
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


def _recipe_digest(*recipes: str) -> str:
    """Same cache key as the Makefile: a digest of what fetches or builds the thing (the files
    named, glob patterns under ``deploy/local`` in the order the shell expands them)."""
    digest = hashlib.sha256()
    for pattern in recipes:
        for path in sorted(DEPLOY_LOCAL.glob(pattern)):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _cached(
    variable: str, version_key: str, name: str, recipes: tuple[str, ...], leaf: str
) -> Path:
    """A fetched or built artifact: ``$variable`` if set, else its versioned cache path."""
    if variable in os.environ:
        return Path(os.environ[variable])
    version = read_versions()[version_key]
    return cache_dir() / f"{name}-{version}-{_recipe_digest(*recipes)}" / leaf


def kafka_libs_dir() -> Path:
    return _cached("APPEALS_KAFKA_LIBS", "KAFKA_VERSION", "kafka", ("pom.xml",), "libs")


def ferretdb_binary() -> Path:
    return _cached(
        "APPEALS_FERRETDB_BIN",
        "FERRETDB_VERSION",
        "ferretdb",
        ("build-ferretdb.sh", "patches/ferretdb-*.patch"),
        "ferretdb",
    )


def jaeger_binary() -> Path:
    return _cached("APPEALS_JAEGER_BIN", "JAEGER_VERSION", "jaeger", ("build-jaeger.sh",), "jaeger")


def system_binary(name: str) -> Path:
    """A tool installed from Debian's packages (``make prometheus``), or ``$APPEALS_<NAME>_BIN``."""
    variable = f"APPEALS_{name.upper()}_BIN"
    if variable in os.environ:
        return Path(os.environ[variable])
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found on PATH: run `make prometheus` first")
    return Path(found)
