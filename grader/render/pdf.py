"""HTML report -> PDF with headless Chromium, offline, in a throwaway profile.

One browser prints a whole class: it is started once and driven over the DevTools protocol on a
pipe (``--remote-debugging-pipe``: JSON messages separated by NUL bytes on fds 3 and 4), since
starting Chromium costs seconds and printing a page a fraction of one. The page is the grader's own
report: its Content-Security-Policy forbids scripts and every fetch, so Chromium only lays out
text, inline styles and ``data:`` images (notebook plots, checked and size-capped by the renderer).

A report holds what a student wrote, so Chromium is treated as exposed to it: run as root, the
grader starts it as a fresh unprivileged user (Chromium's own sandbox refuses root) in a cgroup
with a memory cap where one can be made, and hands it each page as a copy in its own profile.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from grader.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from grader.execute.cgroups import Cgroup

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium's own sandbox is kept, except as root, where Chromium refuses to start with it.
FLAGS = ("--headless", *(("--no-sandbox",) if os.geteuid() == 0 else ()), "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--mute-audio", "--hide-scrollbars")
TIMEOUT_S = 60.0
MEMORY_BYTES = 2 << 30  # Chromium's whole process tree, where a cgroup can cap it
PRINT = {"printBackground": True, "preferCSSPageSize": True, "displayHeaderFooter": False}


class PdfError(RuntimeError):
    """Chromium is missing, failed or timed out."""


def find_browser() -> str | None:
    """``$GRADER_CHROMIUM`` if set, else the first Chromium or Chrome on PATH."""
    configured = os.environ.get("GRADER_CHROMIUM")
    if configured:
        return shutil.which(configured)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


# Chromium reads DevTools commands on fd 3 and answers on fd 4: put the pipe ends there, then exec it.
_ON_FDS_3_AND_4 = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                   "os.execv(sys.argv[3], sys.argv[3:])")


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends are numbered 10 or more, so that moving them onto fds 3 and 4 clobbers neither."""
    low = os.pipe()
    try:
        return fcntl.fcntl(low[0], fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(low[1], fcntl.F_DUPFD_CLOEXEC, 10)
    finally:
        os.close(low[0])
        os.close(low[1])


class Printer:
    """A headless Chromium that prints HTML files to PDF; restarted once if it dies."""

    def __init__(self, browser: str, timeout_s: float = TIMEOUT_S) -> None:
        self.browser = browser
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._to_browser = self._from_browser = -1
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._next_id = 0
        self._cgroup: Cgroup | None = None

    def __enter__(self) -> Printer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # ----------------------------------------------------------------------- process

    def _start(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="grader-chromium-")
        command_read, self._to_browser = _high_pipe()
        self._from_browser, reply_write = _high_pipe()
        log = open(Path(self._profile.name) / "stderr.log", "wb")  # noqa: SIM115 - closed below
        argv = [sys.executable, "-c", _ON_FDS_3_AND_4, str(command_read), str(reply_write), self.browser, *FLAGS,
                "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}", "about:blank"]
        prefix: list[str] = []
        if os.geteuid() == 0:  # never as root: a fresh uid that owns only the profile
            from grader.execute.cgroups import Cgroup
            from grader.execute.limits import Limits
            from grader.execute.uid import drop_privileges, fresh_uid, hand_over

            uid = fresh_uid()
            hand_over(Path(self._profile.name), uid, mode=0o700)
            self._cgroup = Cgroup.create(Limits(memory_bytes=MEMORY_BYTES, max_processes=256))
            prefix = [*(self._cgroup.enter_command() if self._cgroup else []), *drop_privileges(uid)]
        try:
            self._process = subprocess.Popen([*prefix, *argv], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             pass_fds=(command_read, reply_write), start_new_session=True,
                                             env={**os.environ, "HOME": self._profile.name})
        except OSError as error:
            raise PdfError(f"cannot start {self.browser}: {error}") from None
        finally:
            log.close()
            os.close(command_read)
            os.close(reply_write)
        self._buffer, self._events = b"", []
        self._call("Browser.getVersion")

    def close(self) -> None:
        if self._process is not None:
            with contextlib.suppress(PdfError, OSError):
                self._send("Browser.close")
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
            self._process = None
        for fd in (self._to_browser, self._from_browser):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_browser = self._from_browser = -1
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    def _stderr_tail(self) -> str:
        if self._profile is None:
            return ""
        lines = (Path(self._profile.name) / "stderr.log").read_bytes().decode(errors="replace").splitlines()
        useful = [line for line in lines if "dbus" not in line.lower() and line.strip()]
        return useful[-1][:300] if useful else ""

    # ----------------------------------------------------------------------- protocol

    def _send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            written = os.write(self._to_browser, data)
            data = data[written:]
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PdfError(f"{Path(self.browser).name} did not answer within {self.timeout_s:g} s")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise PdfError(f"{Path(self.browser).name} exited: {self._stderr_tail() or 'no message'}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise PdfError(f"{method} failed: {message['error'].get('message', message['error'])}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self._events.append(message)

    def _wait_for(self, event: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            for index, message in enumerate(self._events):
                if message.get("method") == event and message.get("sessionId") == session:
                    del self._events[: index + 1]
                    return
            self._events.append(self._receive(deadline))

    # ----------------------------------------------------------------------- printing

    def _open(self, html: Path, width: int) -> tuple[str, str]:
        """A new tab ``width`` CSS pixels wide showing ``html``, loaded: (target id, session id)."""
        if self._process is None:
            self._start()
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self._call("Page.enable", session=session)
        self._call("Emulation.setScriptExecutionDisabled", {"value": True}, session)  # reports need none
        self._call("Emulation.setDeviceMetricsOverride",
                   {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
        self._events.clear()
        assert self._profile is not None
        page = Path(self._profile.name) / "page.html"  # a copy the browser's own user can read
        shutil.copyfile(html, page)
        os.chmod(page, 0o644)
        self._call("Page.navigate", {"url": page.as_uri()}, session)
        self._wait_for("Page.loadEventFired", session)
        return target, session

    def _close_tab(self, target: str) -> None:
        with contextlib.suppress(PdfError, OSError):
            self._call("Target.closeTarget", {"targetId": target})

    def _print_once(self, html: Path) -> bytes:
        target, session = self._open(html, 1000)
        try:
            data = self._call("Page.printToPDF", PRINT, session)["data"]
        finally:
            self._close_tab(target)
        return base64.b64decode(data)

    def screenshot(self, html: Path, png: Path, *, width: int = 1000, selector: str = "body",
                   max_height: int = 1600) -> Path:
        """A PNG of the element ``selector`` of ``html`` (at most ``max_height`` pixels of it), as a person sees it."""
        if self._process is None:
            self._start()
        target, session = self._open(html, width)
        try:
            where = json.dumps(selector)
            box = self._call("Runtime.evaluate", {"returnByValue": True, "expression": (
                f"(() => {{ const r = document.querySelector({where}).getBoundingClientRect(); "
                "return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })()")}, session)["result"]["value"]
            clip = {"x": box[0], "y": box[1], "width": box[2], "height": min(box[3], max_height), "scale": 1}
            data = self._call("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                         "captureBeyondViewport": True}, session)["data"]
        finally:
            self._close_tab(target)
        atomic_write_bytes(png, base64.b64decode(data))
        return png

    def print(self, html: Path, pdf: Path) -> Path:
        """Print ``html`` to ``pdf`` (A4 as the report's print stylesheet lays it out, no header or footer)."""
        try:
            data = self._print_once(html)
        except (PdfError, OSError):
            self.close()  # a dead or stuck browser: one fresh try
            try:
                data = self._print_once(html)
            except OSError as error:
                tail = self._stderr_tail()
                self.close()
                raise PdfError(f"{Path(self.browser).name} failed: {error}{': ' + tail if tail else ''}") from None
            except PdfError:
                self.close()
                raise
        if not data.startswith(b"%PDF"):
            raise PdfError(f"{Path(self.browser).name} returned no PDF for {html.name}")
        atomic_write_bytes(pdf, data)
        return pdf


def html_to_pdf(browser: str, html: Path, pdf: Path, timeout_s: float = TIMEOUT_S) -> Path:
    """Print one file (starts and stops a browser: use a ``Printer`` for many)."""
    with Printer(browser, timeout_s) as printer:
        return printer.print(html, pdf)
