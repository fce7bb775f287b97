"""Reading the routing policy file, and re-reading it when it changes on disk.

Reload is by polling the file's modification time and size (every ``ROUTING_POLICY_RELOAD_S``):
it works the same for an edit in place, an atomic rename and a Kubernetes ConfigMap update, with
no signal plumbing. An invalid edit never replaces the policy in force: it is logged with every
bad key and counted, and the last valid policy keeps routing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from services.routing import metrics
from services.routing.policy_schema import RoutingPolicy

DEFAULT_POLICY_FILE = Path(__file__).with_name("routing_policy.yaml")

log = logging.getLogger(__name__)


class PolicyError(Exception):
    """The policy file cannot be used; the message names the file and every bad key."""


def load_policy(path: Path) -> RoutingPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(f"{path}: cannot read the routing policy: {error}") from error
    return parse_policy(text, source=str(path))


def parse_policy(text: str, *, source: str) -> RoutingPolicy:
    """A routing policy from its YAML text; ``source`` names it in the errors."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(f"{source}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: the routing policy must be a mapping of keys")
    try:
        return RoutingPolicy.model_validate(data)
    except ValidationError as error:
        raise PolicyError(f"{source}: invalid routing policy:\n{describe(error)}") from error


def describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        path = _key_path(problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if path:
            lines.append(f"  {path}: {message}")
        else:  # cross-reference checks name their own keys, several per message
            lines.extend(f"  {part}" for part in message.split("; "))
    return "\n".join(lines)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


class PolicySource:
    """The policy in force; :meth:`reload_if_changed` swaps in a changed, valid file."""

    def __init__(self, policy: RoutingPolicy, path: Path | None = None) -> None:
        # Without a path the policy never reloads (tests, tools).
        self._policy = policy
        self._path = path
        self._seen = self._signature()

    @classmethod
    def load(cls, path: Path) -> PolicySource:
        """The policy at ``path``, or :class:`PolicyError` (start-up refuses a bad file)."""
        return cls(load_policy(path), path)

    @property
    def current(self) -> RoutingPolicy:
        return self._policy

    def reload_if_changed(self) -> bool:
        """True when a changed, valid file replaced the policy."""
        if self._path is None:
            return False
        signature = self._signature()
        if signature == self._seen:
            return False
        self._seen = signature  # a bad edit is reported once, not on every poll
        try:
            self._policy = load_policy(self._path)
        except PolicyError as error:
            metrics.policy_reloads.add(1, {"outcome": "rejected"})
            log.error("routing policy change rejected; keeping the policy in force: %s", error)
            return False
        metrics.policy_reloads.add(1, {"outcome": "applied"})
        log.info("routing policy reloaded", extra={"path": str(self._path)})
        return True

    async def poll(self) -> None:
        """For a periodic component: re-read the file if it changed."""
        self.reload_if_changed()

    def _signature(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size
