"""The ops page's data source: a component of the ops service that scrapes every service's
``/metrics`` on an interval while someone watches the page, and keeps what the page shows
(``OpsBoard``).

Scraping happens in the ops process, not in the browser, so the page needs only its origin
and an ops token; the services' ``/metrics`` stay unauthenticated on their own ports, as
Prometheus expects. A target that does not answer is shown as down with the reason; the others
still count. Live viewers wait on :meth:`OpsBoard.next_sample`.

Nobody watching, nothing scraped: the scraper runs only while a live stream is open
(:meth:`OpsBoard.watching`) or for ``WATCH_GRACE_S`` after someone asked for the overview
(:meth:`OpsBoard.asked`), so an idle stack with no page open costs no scrapes at all. A viewer
arriving after a pause gets a fresh round at once (:meth:`OpsBoard.fresh`), not stale figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from services.ops import figures
from services.ops.figures import TargetScrape
from services.ops.history import History

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 1.5
# How long an overview request keeps the scraper going (a page or script polling the overview).
WATCH_GRACE_S = 30.0


class OpsBoard:
    """The latest snapshot and its history, and a way to wait for the next one."""

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        interval_s: float,
        window_s: float,
        trace_ui_url: str,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.targets = dict(targets)
        self.interval_s = interval_s
        self.trace_ui_url = trace_ui_url.rstrip("/")
        self.history = History(window_s=window_s, interval_s=interval_s)
        self._clock = clock
        self.latest: dict[str, Any] = self._stamped(
            figures.snapshot(
                [TargetScrape(name, url, error="not scraped yet") for name, url in targets.items()]
            )
        )
        self.latest_point: dict[str, Any] | None = None
        self.version = 0
        self.closed = False
        self._changed = asyncio.Condition()
        self._monotonic = monotonic
        # Who is watching: open live streams, and until when an overview request counts.
        self._streams = 0
        self._asked_until = float("-inf")
        self._watched = asyncio.Event()
        # Set while a scraper serves this board (so that viewers may wait for a fresh round).
        self.scraping = False

    def _stamped(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        return {"at": self._clock(), **snapshot}

    async def publish(self, scrapes: list[TargetScrape]) -> None:
        """Record one round of scrapes and wake every viewer."""
        snapshot = self._stamped(figures.snapshot(scrapes))
        point = self.history.add(snapshot["at"], snapshot)
        snapshot["rates"] = point["rates"]
        async with self._changed:
            self.latest, self.latest_point = snapshot, point
            self.version += 1
            self._changed.notify_all()

    async def next_sample(self, seen: int, timeout_s: float) -> int:
        """Wait until a sample newer than version ``seen`` exists (or the board closes, or the
        timeout passes); returns the version now current."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version != seen or self.closed), timeout_s
                )
            return self.version

    def watched(self) -> bool:
        return self._streams > 0 or self._monotonic() < self._asked_until

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """A live stream is open: scrape while it lasts."""
        self._streams += 1
        self._watched.set()
        try:
            yield
        finally:
            self._streams -= 1

    def asked(self) -> None:
        """Someone read the overview: scrape for the next ``WATCH_GRACE_S``."""
        self._asked_until = self._monotonic() + WATCH_GRACE_S
        self._watched.set()

    async def until_watched(self) -> None:
        """Return once someone watches (or the board closes); costs nothing meanwhile."""
        while not self.watched() and not self.closed:
            self._watched.clear()
            await self._watched.wait()

    async def fresh(self) -> None:
        """Wait (briefly) for a new round when the latest is older than the interval and a
        scraper serves the board: a viewer arriving after a pause sees current figures."""
        if not self.scraping or self.closed:
            return
        if self.latest_point is not None and self._clock() - self.latest["at"] < self.interval_s:
            return
        await self.next_sample(self.version, SCRAPE_TIMEOUT_S + 0.5)

    async def close(self) -> None:
        """Wake every viewer for good (the service is stopping: open streams must end)."""
        async with self._changed:
            self.closed = True
            self._changed.notify_all()
        self._watched.set()

    def settings(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "window_s": self.history.window_s,
            "trace_ui_url": self.trace_ui_url,
            "targets": self.targets,
        }


async def scrape(client: httpx.AsyncClient, name: str, url: str) -> TargetScrape:
    try:
        response = await client.get(url, timeout=SCRAPE_TIMEOUT_S)
        response.raise_for_status()
        return TargetScrape(name, url, figures.parse(response.text))
    except httpx.HTTPStatusError as error:
        return TargetScrape(name, url, error=f"HTTP {error.response.status_code}")
    except httpx.HTTPError as error:
        return TargetScrape(name, url, error=f"{type(error).__name__}: {error}".rstrip(": "))
    except ValueError as error:
        return TargetScrape(name, url, error=f"not a Prometheus exposition: {error}")


class OpsScraper:
    """Component: while the page is watched, one scrape round every ``board.interval_s``, all
    targets at once; while it is not, nothing."""

    name = "ops-scraper"

    def __init__(self, board: OpsBoard, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.board = board
        self._transport = transport
        self._stopping = asyncio.Event()

    async def scrape_once(self, client: httpx.AsyncClient) -> None:
        rounds = [scrape(client, name, url) for name, url in self.board.targets.items()]
        await self.board.publish(list(await asyncio.gather(*rounds)))

    async def run(self) -> None:
        if not self.board.targets:
            log.warning("no metrics targets configured (OPS_METRICS_TARGETS): the ops page "
                        "will show no figures")  # fmt: skip
        self.board.scraping = True
        try:
            async with httpx.AsyncClient(transport=self._transport) as client:
                while not self._stopping.is_set():
                    await self.board.until_watched()
                    if self._stopping.is_set() or self.board.closed:
                        return
                    started = time.monotonic()
                    try:
                        await self.scrape_once(client)
                    except Exception:
                        log.exception("ops scrape round failed")
                    pause = max(0.0, self.board.interval_s - (time.monotonic() - started))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), pause)
        finally:
            self.board.scraping = False

    async def stop(self) -> None:
        self._stopping.set()
        await self.board.close()
