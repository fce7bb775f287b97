"""FerretDB 1.x with its SQLite handler: the MongoDB-wire store for local runs and tests."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient

from appeals_devstack import processes
from appeals_devstack.paths import ferretdb_binary

# How FerretDB opens its SQLite databases (on top of its own defaults: WAL, busy_timeout 10 s).
# * _txlock=immediate: a transaction that reads before it writes, begun DEFERRED, fails at once
#   with SQLITE_BUSY ("database is locked") when another connection committed in between; the
#   busy timeout does not apply there. Begun IMMEDIATE, it waits for the write lock instead.
# * synchronous(normal): in WAL mode a commit is safe against a crash of FerretDB or of any
#   process, and only an OS crash or power loss may undo the last commits. That is the local
#   broker's guarantee too (Kafka leaves flushing to the OS page cache); production points
#   MONGODB_URL at a replicated MongoDB. It triples concurrent write throughput here (README,
#   "Performance").
# The build patches (deploy/local/patches) make `_id` lookups use the `_id` index and make an
# update of one document atomic, as in MongoDB (FerretDB 1.24 reads it outside the transaction
# that writes it back, so two concurrent updates could lose one).
SQLITE_OPTIONS = "_txlock=immediate&_pragma=synchronous(normal)"
# Go's collector runs when the heap doubled (GOGC=100). FerretDB allocates afresh for every
# command and keeps little alive (~70 MB resident), so under load it collected constantly: ~10 %
# of its CPU in a profile at 40 appeals/s. Letting the heap grow 4x first costs a few hundred MB
# at most on a machine that has them.
GO_GC_PERCENT = "400"
# Set to host:port to serve Go's pprof endpoints (/debug/pprof/) while profiling; off otherwise.
DEBUG_ADDR_VARIABLE = "APPEALS_FERRETDB_DEBUG_ADDR"


@dataclass
class FerretDB(processes.LocalServer):
    data_dir: Path
    port: int
    binary: Path = field(default_factory=ferretdb_binary)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "ferretdb.log"

    def start(self) -> None:
        if not self.binary.exists():
            raise RuntimeError(
                f"FerretDB binary missing at {self.binary}: run `make ferretdb` first"
            )
        sqlite_dir = self.data_dir / "sqlite"
        sqlite_dir.mkdir(parents=True, exist_ok=True)
        self._launch(
            [
                str(self.binary),
                "--handler=sqlite",
                f"--sqlite-url=file:{sqlite_dir}/?{SQLITE_OPTIONS}",
                f"--listen-addr=127.0.0.1:{self.port}",
                f"--state-dir={self.data_dir}",
                # The debug HTTP listener defaults to a fixed port; "-" turns it off so that a test
                # session's FerretDB never collides with the one `make run` started.
                f"--debug-addr={os.environ.get(DEBUG_ADDR_VARIABLE) or '-'}",
                "--telemetry=disable",
                "--log-level=warn",
            ],
            env={**os.environ, "GOGC": os.environ.get("GOGC", GO_GC_PERCENT)},
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        self._wait(
            lambda: processes.port_open(self.port) and _ping(self.url),
            timeout=timeout,
            what=f"FerretDB on :{self.port}",
        )


def _ping(url: str) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=1000)
    try:
        client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        client.close()
