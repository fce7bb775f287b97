"""Headless Chromium (Debian's ``chromium``) driven over the Chrome DevTools Protocol.

Enough of CDP for a test to look at a page as a person would: open a URL, read the rendered
DOM, type, wait for something to appear, take a screenshot. The DevTools port comes from the
``DevToolsActivePort`` file Chromium writes into its profile folder (``--remote-debugging-port=0``
picks a free one). ``make test`` installs the browser (``make chromium``).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = os.environ.get("APPEALS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


class BrowserError(Exception):
    pass


class Page:
    """One tab, attached over a flat CDP session."""

    def __init__(self, socket: ClientConnection, session_id: str | None) -> None:
        self._socket = socket
        self._session_id = session_id
        self._ids = itertools.count(1)

    def send(self, method: str, timeout_s: float = 30, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if self._session_id:
            message["sessionId"] = self._session_id
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout_s
        while True:
            reply = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") != message_id:
                continue  # an event, or the answer to another session's command
            if "error" in reply:
                raise BrowserError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply.get("result", {})
            return result

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout_s: float, what: str) -> Any:
        """Poll ``expression`` until it is truthy; its value. An expression that throws (the
        page is still loading) counts as not yet."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression)
            except BrowserError as error:
                last = error
            else:
                if last:
                    return last
            time.sleep(0.25)
        raise TimeoutError(f"waited {timeout_s:.0f} s for {what}; last value {last!r}")

    def screenshot(self, path: Path) -> bytes:
        png = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return png


@contextlib.contextmanager
def chromium(profile: Path, *, width: int, height: int) -> Iterator[Page]:
    """A headless Chromium with one blank tab of ``width`` x ``height`` CSS pixels."""
    if not Path(CHROMIUM).exists():
        raise BrowserError(f"{CHROMIUM} is missing: run `make chromium` (Debian's chromium)")
    profile.mkdir(parents=True, exist_ok=True)
    log = (profile / "chromium.log").open("wb")
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its helper processes share a group we can stop as one
    )
    try:
        with connect(_devtools_url(profile, process), max_size=None, open_timeout=20) as socket:
            browser = Page(socket, None)
            target = browser.send("Target.createTarget", url="about:blank")["targetId"]
            attached = browser.send("Target.attachToTarget", targetId=target, flatten=True)
            page = Page(socket, attached["sessionId"])
            page.send("Page.enable")
            page.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def _devtools_url(profile: Path, process: subprocess.Popen[bytes]) -> str:
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = (profile / "chromium.log").read_text(errors="replace")[-2000:]
            raise BrowserError(f"chromium exited with {process.returncode}:\n{output}")
        lines = active.read_text().split() if active.exists() else []
        if len(lines) == 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.1)
    raise BrowserError("chromium did not open its DevTools port within 30 s")


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    # Each pixel as bytes (RGB or RGBA), row by row.
    pixels: list[bytes]

    def colours(self) -> Counter[bytes]:
        return Counter(self.pixels)


def read_png(data: bytes) -> Picture:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium's screenshots are)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour_type not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour_type}")
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    previous = bytearray(stride)
    pixels: list[bytes] = []
    for row in range(height):
        start = row * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        line = _unfilter(raw[start], line, previous, channels)
        pixels.extend(bytes(line[i : i + channels]) for i in range(0, stride, channels))
        previous = line
    return Picture(width, height, pixels)


def _unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> bytearray:
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = above[i]
        corner = above[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            estimate = left + up - corner
            pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
            predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            line[i] = (line[i] + predictor) & 0xFF
    return line
