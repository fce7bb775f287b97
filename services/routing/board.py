"""The open cases, in memory: what the desk offers, what the timers wait for. Pure.

The store answers only ``_id`` lookups without scanning (FerretDB; see the README's
"Performance"), so routing never asks it "which cases are open, most urgent first" or "which
leases ran out". Each instance keeps every open case here instead, indexed the ways the desk and
the timers ask:

* per queue, the queued cases in offer order (highest priority, then oldest);
* per queue, the queued cases by how long they have waited (the oldest-wait gauge);
* per agent, the cases they hold; per (content hash, platform), open copies of one item;
* two timer heaps, lease expiries and the next SLA step, each entry tagged with the case
  version it was computed from, so an entry a later change made stale is skipped when popped.

The board is never the truth: every step re-reads the case and the ledger's unique record
``_id`` decides races. It is filled at start from the live ``open_cases`` collection, kept
current by this instance's ledger and, for changes other instances make, by the case feed.
A case leaves it when it is decided or referred.
"""

from __future__ import annotations

import bisect
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from services.routing.model import CaseState, Offer, Status

OrderT = TypeVar("OrderT", tuple[int, datetime, str], tuple[datetime, str])

# Closed cases whose last version the board remembers (the feed then skips their events).
CLOSED_REMEMBERED = 20_000


@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int
    oldest_waiting_since: datetime | None
    breached: int


def _offer_order(case: CaseState) -> tuple[int, datetime, str]:
    return (-case.priority, case.routing.received_at, case.appeal_id)


def next_sla_step(case: CaseState) -> datetime | None:
    """When the SLA timer next has something to do for ``case`` (None: nothing, ever)."""
    if case.final:
        return None
    if case.status == Status.AWAITING_INFO:  # the SLA clock stands still; the wait may end
        return case.info_request.respond_by if case.info_request else None
    if case.sla_breached:
        return None
    return case.sla_due_at if case.sla_warned else case.sla_warn_at


@dataclass
class _Timers:
    """A min-heap of (due, appeal id, version); stale entries are dropped when popped."""

    heap: list[tuple[datetime, str, int]] = field(default_factory=list)

    def push(self, due: datetime, case: CaseState) -> None:
        heapq.heappush(self.heap, (due, case.appeal_id, case.version))

    def pop_due(self, now: datetime) -> Iterator[tuple[str, int]]:
        while self.heap and self.heap[0][0] <= now:
            _, appeal_id, version = heapq.heappop(self.heap)
            yield appeal_id, version

    def due(self, now: datetime) -> Iterator[tuple[str, int]]:
        """Entries due by ``now``, without removing them (smallest first is not promised)."""
        for due, appeal_id, version in self.heap:
            if due <= now:
                yield appeal_id, version

    def compact(self, alive: Callable[[str, int], bool], live: int) -> None:
        """Drop stale entries once they far outnumber the open cases (bounded memory; a
        rebuild costs the heap's size, at most once per that many changes)."""
        if len(self.heap) > 2 * live + 64:
            self.heap = [entry for entry in self.heap if alive(entry[1], entry[2])]
            heapq.heapify(self.heap)


class CaseBoard:
    def __init__(self) -> None:
        self._cases: dict[str, CaseState] = {}
        self._offer_order: dict[str, list[tuple[int, datetime, str]]] = {}
        self._waiting: dict[str, list[tuple[datetime, str]]] = {}
        self._held: dict[str, set[str]] = {}
        self._copies: dict[tuple[str, int], set[str]] = {}
        self._breached: dict[str, int] = {}
        self._leases = _Timers()
        self._sla = _Timers()
        # The newest offer of each case this instance knows of (it made it or read it).
        self._offers: dict[str, Offer] = {}
        # Versions this instance is announcing right now (published before the board learns
        # them), and the last versions of recently closed cases: what the feed need not read.
        self._announcing: dict[str, int] = {}
        self._closed: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cases)

    def __contains__(self, appeal_id: object) -> bool:
        return appeal_id in self._cases

    def get(self, appeal_id: str) -> CaseState | None:
        return self._cases.get(appeal_id)

    def version(self, appeal_id: str) -> int | None:
        case = self._cases.get(appeal_id)
        return case.version if case is not None else None

    def appeal_ids(self) -> list[str]:
        return list(self._cases)

    def knows(self, appeal_id: str, version: int) -> bool:
        """Whether the board holds ``appeal_id`` at ``version`` or later, is about to (this
        instance is announcing it), or saw the case close at that version or later."""
        for known in (self.version(appeal_id), self._announcing.get(appeal_id),
                      self._closed.get(appeal_id)):  # fmt: skip
            if known is not None and known >= version:
                return True
        return False

    def announcing(self, appeal_id: str, version: int) -> None:
        """This instance recorded ``version`` of the case and is publishing its events."""
        if len(self._announcing) > CLOSED_REMEMBERED:  # put() never came for some: start over
            self._announcing.clear()
        self._announcing[appeal_id] = max(version, self._announcing.get(appeal_id, 0))

    # --- changes ----------------------------------------------------------------------------

    def put(self, case: CaseState) -> None:
        """Record ``case`` as it is now; an older version than the one held is ignored, and a
        decided or referred case leaves the board."""
        announcing = self._announcing.get(case.appeal_id)
        if announcing is not None and announcing <= case.version:
            del self._announcing[case.appeal_id]
        known = self._cases.get(case.appeal_id)
        if known is not None:
            if known.version > case.version:
                return
            self._unindex(known)
        if case.final:
            self._cases.pop(case.appeal_id, None)
            self._offers.pop(case.appeal_id, None)
            self._closed[case.appeal_id] = case.version
            self._closed.move_to_end(case.appeal_id)
            while len(self._closed) > CLOSED_REMEMBERED:
                self._closed.popitem(last=False)
            return
        self._cases[case.appeal_id] = case
        self._index(case)

    def forget(self, appeal_id: str) -> None:
        known = self._cases.pop(appeal_id, None)
        if known is not None:
            self._unindex(known)
        self._offers.pop(appeal_id, None)

    def _index(self, case: CaseState) -> None:
        queue = case.queue
        if case.status == Status.QUEUED:
            bisect.insort(self._offer_order.setdefault(queue, []), _offer_order(case))
            bisect.insort(self._waiting.setdefault(queue, []), (case.waiting_since, case.appeal_id))
        elif case.hold is not None:
            self._held.setdefault(case.hold.agent_id, set()).add(case.appeal_id)
            self._leases.push(case.hold.lease_expires_at, case)
        content_hash = case.routing.content_hash
        if content_hash:
            key = (content_hash, case.routing.platform)
            self._copies.setdefault(key, set()).add(case.appeal_id)
        if case.sla_breached:
            self._breached[queue] = self._breached.get(queue, 0) + 1
        next_step = next_sla_step(case)
        if next_step is not None:
            self._sla.push(next_step, case)
        self._offer_order.setdefault(queue, [])  # a queue seen once keeps reporting depth 0
        for timers in (self._leases, self._sla):
            timers.compact(self._is_current, len(self._cases))

    def _unindex(self, case: CaseState) -> None:
        queue = case.queue
        if case.status == Status.QUEUED:
            _remove(self._offer_order.get(queue), _offer_order(case))
            _remove(self._waiting.get(queue), (case.waiting_since, case.appeal_id))
        elif case.hold is not None:
            held = self._held.get(case.hold.agent_id)
            if held is not None:
                held.discard(case.appeal_id)
                if not held:
                    del self._held[case.hold.agent_id]
        content_hash = case.routing.content_hash
        if content_hash:
            copies = self._copies.get((content_hash, case.routing.platform))
            if copies is not None:
                copies.discard(case.appeal_id)
                if not copies:
                    del self._copies[(content_hash, case.routing.platform)]
        if case.sla_breached:
            self._breached[queue] = self._breached.get(queue, 1) - 1
        # Timer entries are left in their heaps: the version tag makes them stale.

    # --- what the desk asks -----------------------------------------------------------------

    def offerable(self, queues: Iterable[str] | None, now: datetime, limit: int) -> list[CaseState]:
        """Cases waiting for a reviewer in ``queues`` (None: all), most urgent first, then
        oldest: queued ones, and claimed ones whose lease ran out (the timer releases those
        shortly)."""
        names = self._offer_order.keys() if queues is None else set(queues)
        lists = [self._offer_order.get(queue, []) for queue in names]
        lapsed = [
            _offer_order(case)
            for appeal_id, version in self._leases.due(now)
            if (case := self._cases.get(appeal_id)) is not None
            and case.version == version
            and (queues is None or case.queue in names)
            and case.lease_expired(now)
        ]
        found: list[CaseState] = []
        for _, _, appeal_id in heapq.merge(*lists, sorted(set(lapsed))):
            case = self._cases.get(appeal_id)
            if case is not None and case.is_open(now):
                found.append(case)
                if len(found) >= limit:
                    break
        return found

    def held(self, agent_id: str, now: datetime) -> int:
        """Cases ``agent_id`` holds with a lease still running."""
        return sum(
            1
            for appeal_id in self._held.get(agent_id, ())
            if (case := self._cases.get(appeal_id)) is not None and case.held_by(agent_id, now)
        )

    def copies(self, content_hash: str, platform: int, excluding: str) -> list[str]:
        return sorted(self._copies.get((content_hash, platform), set()) - {excluding})

    def latest_offer(self, appeal_id: str) -> Offer | None:
        return self._offers.get(appeal_id)

    def offered(self, offer: Offer) -> None:
        """Remember the newest offer of a case (open cases only; an older one is ignored)."""
        if offer.appeal_id not in self._cases:
            return
        known = self._offers.get(offer.appeal_id)
        if known is None or offer.number >= known.number:
            self._offers[offer.appeal_id] = offer

    # --- what the timers ask ----------------------------------------------------------------

    def due_leases(self, now: datetime) -> list[str]:
        """Cases whose lease ran out by ``now`` (each returned once per expiry)."""
        return self._pop(self._leases, now, lambda case: case.lease_expired(now))

    def due_sla(self, now: datetime) -> list[str]:
        """Cases whose SLA warning or breach is due by ``now`` (each once per step)."""
        return self._pop(self._sla, now, lambda case: (next_sla_step(case) or now) <= now)

    def _pop(
        self, timers: _Timers, now: datetime, still_due: Callable[[CaseState], bool]
    ) -> list[str]:
        due: dict[str, None] = {}  # a re-armed case may have two entries for one step
        for appeal_id, version in timers.pop_due(now):
            case = self._cases.get(appeal_id)
            if case is not None and case.version == version and still_due(case):
                due[appeal_id] = None
        timers.compact(self._is_current, len(self._cases))
        return list(due)

    def rearm(self, appeal_id: str) -> None:
        """Make the case's lease expiry and next SLA step due again: a due step failed (store
        unavailable), or this instance took the case over and may have dropped its due entries
        while another instance owned it."""
        case = self._cases.get(appeal_id)
        if case is None:
            return
        if case.hold is not None and case.status == Status.IN_REVIEW:
            self._leases.push(case.hold.lease_expires_at, case)
        next_step = next_sla_step(case)
        if next_step is not None:
            self._sla.push(next_step, case)

    def _is_current(self, appeal_id: str, version: int) -> bool:
        case = self._cases.get(appeal_id)
        return case is not None and case.version == version

    # --- what the metrics ask ---------------------------------------------------------------

    def queue_stats(self) -> list[QueueStats]:
        """Depth, oldest waiting case and breached open cases per queue seen."""
        return [
            QueueStats(
                queue,
                len(ordered),
                waiting[0][0] if (waiting := self._waiting.get(queue)) else None,
                self._breached.get(queue, 0),
            )
            for queue, ordered in sorted(self._offer_order.items())
        ]


def _remove(items: list[OrderT] | None, item: OrderT) -> None:
    if not items:
        return
    at = bisect.bisect_left(items, item)
    if at < len(items) and items[at] == item:
        del items[at]
