"""One headless Chromium that prints many documents: the DevTools protocol over a pipe.

``chromium --print-to-pdf`` starts a browser for every document, about 1.2 CPU-seconds each (measured:
10 board packs, 12.2 CPU-s, 7.0 s wall); a national run prints 53 board packs and 11 parts of its sites
appendix. :class:`ChromiumSession` starts one browser with ``--remote-debugging-pipe`` (no network port)
and prints each document in a new tab with ``Page.printToPDF``, with the settings ``--print-to-pdf`` uses
(CSS page size, backgrounds, tagged PDF, no header or footer; the tests compare the two).

:func:`printing_sessions` makes every :func:`pcref_eval.report.render.write_pdf_chromium` call in its
scope use one session per thread, closed when the scope ends.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

#: ``Page.printToPDF`` parameters matching ``chromium --headless --no-pdf-header-footer --print-to-pdf``.
PRINT_PARAMS = {"printBackground": True, "preferCSSPageSize": True, "displayHeaderFooter": False,
                "generateTaggedPDF": True, "transferMode": "ReturnAsStream"}


class ChromiumError(RuntimeError):
    """The browser failed, closed, or did not answer in time."""


class ChromiumSession:
    """A headless Chromium process driven over ``--remote-debugging-pipe`` (file descriptors 3 and 4)."""

    def __init__(self, exe: str, flags: list[str], timeout: float = 180):
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="pcref-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, to_browser_r, 3), (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
                   (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
        argv = [exe, *flags, f"--user-data-dir={self._profile}", "--remote-debugging-pipe", "about:blank"]
        # posix_spawn, not subprocess with preexec_fn: this runs in worker threads
        self._pid = os.posix_spawn(exe, argv, os.environ, file_actions=actions, setsid=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []

    # ------------------------------------------------------------------ protocol
    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:  # the browser exited and its end of the pipe is closed
            raise ChromiumError("chromium closed its DevTools pipe (it exited)") from None
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def _receive(self, deadline: float) -> dict:
        import select
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise ChromiumError(f"chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ChromiumError("chromium closed its DevTools pipe (it exited)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _wait_for_load(self, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("sessionId") == session and event["method"] == "Page.loadEventFired":
                    del self._events[i]
                    return
            self._events.append(self._receive(deadline))

    # ------------------------------------------------------------------ printing
    def print_pdf(self, html_path: Path, out: Path) -> Path:
        """``html_path`` printed to ``out`` in a new tab, closed afterwards."""
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        try:
            session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self._send("Page.enable", session=session)
            self._send("Page.navigate", {"url": Path(html_path).resolve().as_uri()}, session=session)
            self._wait_for_load(session)
            stream = self._send("Page.printToPDF", PRINT_PARAMS, session=session)["stream"]
            tmp = out.with_name(f".{out.name}.printing")
            with open(tmp, "wb") as f:
                while True:
                    chunk = self._send("IO.read", {"handle": stream, "size": 1 << 22}, session=session)
                    data = chunk.get("data", "")
                    f.write(base64.b64decode(data) if chunk.get("base64Encoded") else data.encode("latin-1"))
                    if chunk.get("eof"):
                        break
            self._send("IO.close", {"handle": stream}, session=session)
            tmp.replace(out)
        finally:
            self._events = [e for e in self._events if e.get("sessionId") is None]
            try:
                self._send("Target.closeTarget", {"targetId": target})
            except ChromiumError:
                pass
        return out

    def _exited(self) -> bool:
        try:
            return os.waitpid(self._pid, os.WNOHANG) != (0, 0)
        except ChildProcessError:  # already reaped
            return True

    def close(self) -> None:
        """Close the browser (killed if it does not exit within 10 s) and remove its profile."""
        try:
            self.timeout = 10
            self._send("Browser.close")
        except (ChromiumError, OSError):
            pass
        deadline = time.monotonic() + 10
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self._exited():
            try:
                os.killpg(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)


class _Sessions(threading.local):
    session: ChromiumSession | None = None


_ACTIVE: list | None = None  # the sessions of the innermost printing_sessions() scope
_LOCAL = _Sessions()
_LOCK = threading.Lock()


def current_session(exe: str, flags: list[str]) -> ChromiumSession | None:
    """This thread's session inside :func:`printing_sessions` (started on first use), else None."""
    if _ACTIVE is None:
        return None
    if _LOCAL.session is None or _LOCAL.session not in _ACTIVE:
        _LOCAL.session = ChromiumSession(exe, flags)
        with _LOCK:
            _ACTIVE.append(_LOCAL.session)
    return _LOCAL.session


def discard_session(session: ChromiumSession) -> None:
    """Close a session that failed; the thread's next print starts a new one."""
    with _LOCK:
        if _ACTIVE is not None and session in _ACTIVE:
            _ACTIVE.remove(session)
    session.close()


@contextmanager
def printing_sessions():
    """Within this scope Chromium prints go through one browser per thread; all are closed on exit."""
    global _ACTIVE
    outer, _ACTIVE = _ACTIVE, []
    try:
        yield
    finally:
        sessions, _ACTIVE = _ACTIVE, outer
        for s in sessions:
            s.close()
