"""bmc's capture session: a browser over CDP into the durable spool, the device's channel, the status line.

One `Session` runs while bmc captures (`bmc launch`, `bmc attach`). Its parts:

- `CdpCapture` (busymate/cdp_capture.py) hands each finished request to `Writer.put` as an ingest row;
- the shared spool writer (busymate/spool.py) posts segments to `/functions/v1/ingest` under the device token,
  so an API outage loses nothing: rows wait on disk under `<home>/spool/<device_uuid>/` and drain when it
  returns;
- `DeviceClient` (busymate/device_client.py) holds the `device:<uuid>` channel, the heartbeat and the online
  state: a `cdp-command` runs on the browser (`CdpCapture.command`) and the client answers `cdp-result`;
  `unpair` forgets the credential and stops; a settings change (`capture_bodies`, `body_cap_bytes`) is applied
  to the running capture;
- a status line (captured, sent, queued, errors) redrawn on a terminal, plain lines otherwise, and
  `<home>/status.json` for `bmc status` in another shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from busymate.cdp_capture import CdpCapture, CdpError
from busymate.device_client import (
    DeviceClient,
    DeviceCredential,
    DeviceHandlers,
    DeviceUnpaired,
    forget_credential,
)
from busymate.spool import Writer

log = logging.getLogger("busymate.bmc")

INGEST = "/functions/v1/ingest"
# CDP domains the browser endpoint itself serves; a command of any other domain without a sessionId is sent to
# a page (default_session).
BROWSER_DOMAINS = frozenset({"Browser", "Target", "SystemInfo", "Storage", "Tethering"})
DEFAULT_CAP = 1_048_576  # body_cap_bytes when the settings do not say
STATUS_EVERY = 0.5  # seconds between redraws of the status line (and status.json writes)
PLAIN_EVERY = 5.0  # seconds between plain status lines (stdout not a terminal), when something changed
START_TIMEOUT = 10.0  # seconds the device client may take to join its channel before capture starts anyway


def credential_path(home: Path) -> Path:
    """Where bmc keeps its device credential (0600)."""
    return home / "credential.json"


def spool_dir(home: Path) -> Path:
    """bmc's spool: one folder of segments per device uuid."""
    return home / "spool"


def status_path(home: Path) -> Path:
    """What a running bmc last wrote about itself (for `bmc status`)."""
    return home / "status.json"


def spooled_rows(home: Path, device_uuid: str) -> tuple[int, int]:
    """(segments, rows) waiting on disk for `device_uuid`."""
    folder = spool_dir(home) / device_uuid
    segments = sorted(folder.glob("*.json")) if folder.is_dir() else []
    rows = 0
    for path in segments:
        with contextlib.suppress(OSError, ValueError):
            rows += len(json.loads(path.read_bytes()))
    return len(segments), rows


def default_session(capture: CdpCapture) -> str | None:
    """The session a cdp-command without `sessionId` runs in when its domain is a page's (Runtime, Page,
    DOM, Network, ...): the most recently attached page that is not blank (the tab `bmc launch URL` opened);
    None when no page is attached."""
    pages = [
        session
        for session in getattr(capture, "_sessions", {}).values()
        if session.target.get("type") == "page" and not session.closed
    ]
    shown = [s for s in pages if not str(s.target.get("url", "")).startswith("about:")]
    chosen = (shown or pages)[-1:]
    return str(chosen[0].id) if chosen else None


def body_settings(settings: dict[str, Any] | None) -> tuple[bool, int]:
    """(capture bodies?, body cap in bytes) from effective settings; defaults for what is missing or odd."""
    settings = settings or {}
    bodies = settings.get("capture_bodies")
    cap = settings.get("body_cap_bytes")
    return (
        bodies if isinstance(bodies, bool) else True,
        cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else DEFAULT_CAP,
    )


def _page_sessions(capture: CdpCapture) -> dict[str, str]:
    """targetId -> session id of the pages the capture has attached (and enabled Network on)."""
    sessions = getattr(capture, "_sessions", {}).values()
    return {
        str(s.target.get("targetId")): str(s.id)
        for s in sessions
        if s.target.get("type") == "page" and not s.closed
    }


async def open_page(capture: CdpCapture, url: str, timeout: float = 10.0) -> None:
    """Navigate a blank page the capture already holds to `url` (a new blank tab when there is none), so its
    document request is captured too: a tab created with the URL starts loading before it is attached."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    blank = [
        str(s.id)
        for s in getattr(capture, "_sessions", {}).values()
        if s.target.get("type") == "page" and s.target.get("url") in ("about:blank", "") and not s.closed
    ]
    if blank:
        session_id = blank[0]
    else:
        created = await capture.command("Target.createTarget", {"url": "about:blank"})
        target_id = str(created.get("targetId"))
        while (found := _page_sessions(capture).get(target_id)) is None:
            if loop.time() > deadline:
                raise CdpError(f"the new tab for {url} was not attached within {timeout:.0f} s")
            await asyncio.sleep(0.05)
        session_id = found
    await asyncio.sleep(0.1)  # the capture's Network.enable on that session goes first
    await capture.command("Page.navigate", {"url": url}, session_id)


class _SayHandler(logging.Handler):
    """Warnings of bmc's parts (the spool, the device client, the capture) as lines of the session's output,
    so they never land in the middle of the status line."""

    def __init__(self, session: Session) -> None:
        super().__init__(logging.WARNING)
        self.session = session

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.session._say(self.format(record))
        except Exception:
            self.handleError(record)


@dataclass
class Counts:
    """What the status line shows."""

    captured: int = 0
    sent: int = 0
    queued: int = 0
    errors: int = 0
    api: str = "ok"  # ok | unreachable | refused

    def line(self) -> str:
        state = {"ok": "", "unreachable": "  API unreachable: spooling", "refused": "  API refused"}[self.api]
        counts = f"captured {self.captured}  sent {self.sent}  queued {self.queued}  errors {self.errors}"
        return f"bmc  {counts}{state}"


@dataclass
class Session:
    """One capture: the browser at `ws_url` into the spool, under `credential`, until the browser closes, a
    signal, `unpair` or a refused credential. `url`, when given, is opened in a new tab once attached."""

    credential: DeviceCredential
    home: Path
    ws_url: str
    url: str | None = None
    browser: subprocess.Popen[bytes] | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    tty: bool = False
    exit_code: int = 0
    reason: str = ""
    counts: Counts = field(default_factory=Counts)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _capture: CdpCapture | None = None
    _writer: Writer | None = None
    _client: DeviceClient | None = None
    _bodies: tuple[bool, int] = (True, DEFAULT_CAP)
    _said_unreachable: bool = False
    _joining: asyncio.Task[None] | None = None

    def stop(self, reason: str, code: int = 0) -> None:
        if not self._stop.is_set():
            self.reason, self.exit_code = reason, code
            self._stop.set()

    async def run(self) -> int:
        uuid = self.credential.device_uuid
        self._writer = Writer(
            spool_dir(self.home),
            self.credential.url,
            self.credential.anon_key,
            lambda device: self.credential.access_token if device == uuid else None,
            self._refused,
            endpoint=INGEST,
            name="bmc-writer",
        )
        self._writer.start()
        handler = _SayHandler(self)
        logging.getLogger("busymate").addHandler(handler)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.stop, "stopped", 0)
        try:
            await self._start_device_client()
            bodies, cap = self._bodies
            self._capture = CdpCapture(self.ws_url, self._on_entry, bodies=bodies, max_body_bytes=cap)
            await self._capture.start()
            self._say(f"attached to {self.ws_url} as device {self.credential.name!r} ({uuid})")
            if self.url:
                await open_page(self._capture, self.url)
            closed = asyncio.create_task(self._capture.wait_closed())
            closed.add_done_callback(lambda _: self.stop("the browser closed", 0))
            status = asyncio.create_task(self._status_loop())
            await self._stop.wait()
            status.cancel()
            closed.cancel()
        finally:
            await self._shutdown()
            logging.getLogger("busymate").removeHandler(handler)
        return self.exit_code

    async def _start_device_client(self) -> None:
        """Join the device's channel; while the API does not answer, capture starts anyway (into the spool)
        and joining is retried in the background."""
        if await self._try_device_client():
            return
        self._say(
            f"the API at {self.credential.url} is unreachable: capturing to the spool "
            f"({spool_dir(self.home)}); entries are sent when it answers"
        )
        self._said_unreachable = True
        self._joining = asyncio.create_task(self._join_later())

    async def _try_device_client(self) -> bool:
        handlers = DeviceHandlers(
            on_unpair=self._on_unpair,
            on_cdp_command=self._on_cdp_command,
            on_settings=self._on_settings,
        )
        client = DeviceClient(self.credential, handlers, credential_path=credential_path(self.home))
        try:
            await asyncio.wait_for(client.start(), START_TIMEOUT)
        except DeviceUnpaired as exc:
            self._say(f"{exc}: get a new code (`busymate devices pair NAME`) and run `bmc pair CODE`")
            self.stop("unpaired", 1)
            return True
        except Exception as exc:  # the API may be away
            log.debug("the device channel did not open: %s", exc)
            with contextlib.suppress(Exception):
                await client.close(offline=False)
            return False
        self._client = client
        return True

    async def _join_later(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            await asyncio.sleep(delay)
            if await self._try_device_client():
                self._say(f"joined device:{self.credential.device_uuid}")
                return
            delay = min(delay * 2, 15.0)

    async def _shutdown(self) -> None:
        if self._joining is not None:
            self._joining.cancel()
        if self._capture is not None:
            with contextlib.suppress(Exception):
                await self._capture.close()
        if self._writer is not None:
            await self._writer.stop(drain_for=5.0)
            self._update()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close(offline=True)
        if self.browser is not None and self.browser.poll() is None:
            self.browser.terminate()
            try:
                await asyncio.to_thread(self.browser.wait, 10)
            except subprocess.TimeoutExpired:
                self.browser.kill()
        self._write_status(running=False)
        if self.tty:
            self.out.write("\r\x1b[2K")
        self._say(f"{self.counts.line()}  ({self.reason or 'stopped'})")
        if self.counts.queued:
            self._say(
                f"{self.counts.queued} entries wait in the spool ({spool_dir(self.home)}); the next `bmc "
                "launch` or `bmc attach` sends them"
            )

    # --- the capture and the spool ---

    def _on_entry(self, entry: dict[str, Any]) -> None:
        assert self._writer is not None
        size = len(entry.get("response_body_b64") or "") + len(entry.get("request_body_b64") or "")
        self._writer.put(self.credential.device_uuid, entry, size)

    def _refused(self, device_uuid: str, why: str) -> None:
        self.counts.api = "refused"
        self._say(
            f"the API refused bmc's credential ({why}): the device was unpaired or paired again. Get a new "
            "code (`busymate devices pair NAME`) and run `bmc pair CODE`; captured entries stay in the spool"
        )
        self.stop("credential refused", 1)

    # --- the device channel ---

    async def _on_cdp_command(
        self, command_id: str, method: str, params: dict[str, Any], session_id: str | None
    ) -> dict[str, Any]:
        if self._capture is None:
            raise CdpError("bmc is not attached to a browser yet")
        if session_id is None and method.split(".", 1)[0] not in BROWSER_DOMAINS:
            session_id = default_session(self._capture)
            if session_id is None:
                raise CdpError(f"{method} runs in a page, and no page is open: open one, or give a sessionId")
        result: dict[str, Any] = await self._capture.command(method, params, session_id)
        return result

    def _on_unpair(self) -> None:
        forget_credential(credential_path(self.home))
        self._say("this device was unpaired: its credential is forgotten; `bmc pair CODE` pairs it again")
        self.stop("unpaired", 0)

    def _on_settings(self, settings: dict[str, Any]) -> None:
        bodies, cap = body_settings(settings)
        if (bodies, cap) == self._bodies:
            return
        self._bodies = (bodies, cap)
        if self._capture is not None:
            for name, value in (("bodies", bodies), ("max_body_bytes", cap)):
                with contextlib.suppress(AttributeError):
                    setattr(self._capture, name, value)
        self._say(f"settings: bodies {'on' if bodies else 'off'}, body cap {cap} bytes")

    # --- the status line ---

    def _update(self) -> None:
        writer, uuid = self._writer, self.credential.device_uuid
        if writer is None:
            return
        stats = writer.stats
        self.counts.captured = stats.captured
        self.counts.sent = stats.stored + stats.duplicates
        self.counts.queued = writer.queued(uuid)
        capture_errors = getattr(getattr(self._capture, "stats", None), "errors", 0)
        # Failed posts are not errors: the outage shows as "API unreachable" and nothing is lost.
        self.counts.errors = stats.rejected + (capture_errors if isinstance(capture_errors, int) else 0)
        if self.counts.api != "refused":
            failing = writer.failing(uuid)
            if failing and not self._said_unreachable:
                self._say(
                    f"the API at {self.credential.url} is unreachable: still capturing, {self.counts.queued} "
                    f"entries wait in the spool ({spool_dir(self.home)})"
                )
            elif not failing and self._said_unreachable and stats.batches:
                self._say("the API answers again: the spool drains")
            self._said_unreachable = failing or (self._said_unreachable and not stats.batches)
            self.counts.api = "unreachable" if failing else "ok"

    async def _status_loop(self) -> None:
        shown, shown_at = "", 0.0
        while True:
            self._update()
            self._write_status(running=True)
            line = self.counts.line()
            now = time.monotonic()
            if self.tty:
                self.out.write("\r\x1b[2K" + line)
                self.out.flush()
            elif line != shown and now - shown_at >= PLAIN_EVERY:
                self._say(line)
                shown, shown_at = line, now
            await asyncio.sleep(STATUS_EVERY)

    def _say(self, message: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K")
        self.out.write(message + "\n")
        self.out.flush()

    def _write_status(self, *, running: bool) -> None:
        body = {
            "pid": os.getpid() if running else None,
            "running": running,
            "device_uuid": self.credential.device_uuid,
            "browser": self.ws_url,
            "updated_at": time.time(),
            "captured": self.counts.captured,
            "sent": self.counts.sent,
            "queued": self.counts.queued,
            "errors": self.counts.errors,
            "api": self.counts.api,
        }
        path = status_path(self.home)
        tmp = path.with_name(f".{path.name}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(body))
            tmp.replace(path)


def run_session(session: Session, before: Callable[[], None] | None = None) -> int:
    """Run a session on a fresh event loop; its exit code."""
    if before is not None:
        before()
    return asyncio.run(session.run())
