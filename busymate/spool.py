"""Durable writes: captured rows go to a per-device on-disk spool, then to an ingest endpoint in batches.

Shared by the capturing workers: the proxy posts to `/rest/v1/rpc/ingest_entries`, bmc to
`/functions/v1/ingest` (both take `{"batch": [...]}` and answer `ingest_entries`' answer); the endpoint, the
body key and the spool folder are the writer's parameters. A worker's hooks only append a row to memory
(`Writer.put`). Every `interval` the writer moves what was captured into a segment file
(`<spool>/<device_uuid>/<time>-<n>.json`, written to a temporary name and renamed, so a segment is whole or
absent), then posts the oldest segments of each device to the endpoint under that device's credential and
deletes them once the database answered. Rows carry their own ids, so a segment resent after a crash or a lost
answer is stored once (`ingest_entries` counts the rest as duplicates). While the API is down, segments pile
up on disk (not in memory) and drain, oldest first, when it returns. A 401 means the device's credential was
voided: its segments stay on disk, and the worker is told (`on_refused`: the proxy closes that device's port,
bmc stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from busymate.api_client import AsyncApi
from busymate.api_core import ApiRefused, ApiUnreachable, Unauthorized

log = logging.getLogger("busymate.spool")

MAX_ROWS = 500  # rows per ingest_entries call (the RPC takes at most 1000)
MAX_BYTES = 8 * 1024 * 1024  # and about this much JSON, far under the API's body limit
BACKOFF = (0.25, 0.5, 1.0, 2.0, 5.0)
BUSY_ROWS = 200  # under load, a batch is spooled once it has this many rows...
MAX_WAIT = 0.25  # ...or its oldest row waited this long
BUSY_TICK = 5  # more rows than this per device in one tick (interval) is "under load"
INGEST = "/rest/v1/rpc/ingest_entries"


@dataclass
class _Segment:
    """A spooled batch: its file, its rows as a JSON array (kept while it waits, so it is never read back or
    parsed again), and how many rows it holds."""

    path: Path
    rows: int
    body: bytes | None = None

    def payload(self) -> bytes:
        if self.body is None:  # left by an earlier run
            self.body = self.path.read_bytes()
        return self.body


@dataclass
class _Device:
    rows: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0
    oldest: float = 0.0
    segments: list[_Segment] = field(default_factory=list)
    failures: int = 0
    retry_at: float = 0.0
    refused: bool = False
    posting: bool = False


@dataclass
class Stats:
    """What the writer did, for logs and tests."""

    captured: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed_posts: int = 0
    batches: int = 0


class Writer:
    """Batches rows per device through the spool into the database.

    Batches adapt to the traffic: a lone flow is written within `interval` (50 ms), while under load rows
    gather for up to `MAX_WAIT` or `BUSY_ROWS` rows, so each call carries more and costs less per row.
    """

    def __init__(
        self,
        spool_dir: Path,
        api_url: str,
        apikey: str,
        token_for: Callable[[str], str | None],
        on_refused: Callable[[str, str], None],
        interval: float = 0.05,
        http: httpx.AsyncClient | None = None,
        *,
        endpoint: str = INGEST,
        body_key: str = "batch",
        name: str = "busymate-writer",
    ) -> None:
        self.spool_dir = spool_dir
        self._endpoint = endpoint
        self._head = b"{" + orjson.dumps(body_key) + b":["
        self._name = name
        self._token_for = token_for
        self._on_refused = on_refused
        self._interval = interval
        self._devices: dict[str, _Device] = {}
        self._wake = asyncio.Event()
        self._api = AsyncApi(api_url, apikey, None, http, timeout=httpx.Timeout(30.0, connect=3.0))
        self._seq = 0
        self._arrived = 0  # rows put since the last tick: the traffic's rate
        self.stats = Stats()
        self._task: asyncio.Task[None] | None = None
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def put(self, device_uuid: str, row: dict[str, Any], size_hint: int = 0) -> None:
        """Queue one captured flow (cheap: called from the proxy's hooks)."""
        dev = self._devices.get(device_uuid)
        if dev is None:
            dev = self._devices[device_uuid] = _Device()
        if not dev.rows:
            dev.oldest = time.monotonic()
        dev.rows.append(row)
        dev.size += size_hint + 600
        self._arrived += 1
        self.stats.captured += 1
        if len(dev.rows) >= MAX_ROWS or dev.size >= MAX_BYTES:
            self._wake.set()

    def resume(self, device_uuid: str) -> None:
        """The device has a credential again: drain its spool."""
        dev = self._devices.setdefault(device_uuid, _Device())
        dev.refused = False
        dev.failures = 0
        dev.retry_at = 0.0
        self._wake.set()

    def start(self) -> None:
        """Run in the background (segments left by an earlier run are drained too)."""
        for folder in self.spool_dir.iterdir():
            found = sorted(folder.glob("*.json")) if folder.is_dir() else []
            if found:
                dev = self._devices.setdefault(folder.name, _Device())
                dev.segments = [_Segment(path, len(orjson.loads(path.read_bytes()))) for path in found]
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self, drain_for: float = 5.0) -> None:
        """Spool what is queued, drain for up to `drain_for` seconds, stop (what remains stays on disk)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._spool(force=True)
        deadline = time.monotonic() + drain_for
        while time.monotonic() < deadline and self.pending_segments():
            if not await self._post_all():
                await asyncio.sleep(0.2)
        await self._api.aclose()

    def pending_segments(self) -> int:
        """Segments waiting on disk for devices not refused."""
        return sum(len(dev.segments) for dev in self._devices.values() if not dev.refused)

    def queued(self, device_uuid: str) -> int:
        """Rows of a device not stored yet: in memory and in its segments on disk."""
        dev = self._devices.get(device_uuid)
        return 0 if dev is None else len(dev.rows) + sum(segment.rows for segment in dev.segments)

    def failing(self, device_uuid: str) -> bool:
        """Whether the device's last post failed (the API did not answer, or answered 5xx/408/429)."""
        dev = self._devices.get(device_uuid)
        return dev is not None and dev.failures > 0

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self._spool(force=False)
                await self._post_all()
            except Exception:  # never let one bad cycle end the writer
                log.exception("writer cycle failed")
                await asyncio.sleep(1)

    def _due(self, dev: _Device, now: float, busy: bool) -> bool:
        if not dev.rows:
            return False
        if len(dev.rows) >= BUSY_ROWS or dev.size >= MAX_BYTES:
            return True
        age = now - dev.oldest
        return age >= MAX_WAIT or (age >= self._interval and not busy)

    async def _spool(self, force: bool) -> None:
        """Move queued rows into segment files (all of them with `force`, else those that are due)."""
        now = time.monotonic()
        busy = self._arrived >= BUSY_TICK * max(1, len(self._devices))
        self._arrived = 0
        batches = []
        for device_uuid, dev in self._devices.items():
            if dev.rows and (force or self._due(dev, now, busy)):
                batches.append((device_uuid, dev, dev.rows))
                dev.rows, dev.size = [], 0
        if batches:
            await asyncio.to_thread(self._write_segments, batches)

    def _write_segments(self, batches: list[tuple[str, _Device, list[dict[str, Any]]]]) -> None:
        for device_uuid, dev, rows in batches:
            folder = self.spool_dir / device_uuid
            folder.mkdir(exist_ok=True, mode=0o700)
            for start in range(0, len(rows), MAX_ROWS):
                part = rows[start : start + MAX_ROWS]
                body = orjson.dumps(part)
                self._seq += 1
                name = f"{time.time_ns():020d}-{self._seq:06d}.json"
                tmp = folder / f".{name}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(body)
                tmp.rename(folder / name)
                dev.segments.append(_Segment(folder / name, len(part), body))

    async def _post_all(self) -> bool:
        """Post one round for every device that is due; True when something was stored."""
        now = time.monotonic()
        due = [
            d
            for d, dev in self._devices.items()
            if dev.segments and not dev.refused and not dev.posting and dev.retry_at <= now
        ]
        results = await asyncio.gather(*(self._post_device(d) for d in due))
        return any(results)

    def _next_batch(self, dev: _Device) -> tuple[list[_Segment], bytes]:
        """The oldest segments merged up to MAX_ROWS rows, as one request body (arrays joined, not parsed)."""
        taken: list[_Segment] = []
        rows = size = 0
        for segment in dev.segments:
            body = segment.payload()
            if taken and (rows + segment.rows > MAX_ROWS or size + len(body) > MAX_BYTES):
                break
            taken.append(segment)
            rows += segment.rows
            size += len(body)
        inner = b",".join(segment.payload()[1:-1] for segment in taken if segment.rows)
        return taken, self._head + inner + b"]}"

    async def _post_device(self, device_uuid: str) -> bool:
        dev = self._devices[device_uuid]
        dev.posting = True
        try:
            return await self._drain(device_uuid, dev)
        finally:
            dev.posting = False

    async def _drain(self, device_uuid: str, dev: _Device) -> bool:
        stored_any = False
        while dev.segments:
            taken, body = self._next_batch(dev)
            token = self._token_for(device_uuid)
            if token is None:
                dev.refused = True
                log.warning(
                    "device %s has no credential: %d segment(s) wait in the spool",
                    device_uuid,
                    len(dev.segments),
                )
                return stored_any
            try:
                answer = await self._api.request(
                    "POST",
                    self._endpoint,
                    token=token,
                    content=body,
                    extra={"content-type": "application/json"},
                )
            except ApiUnreachable as exc:
                cause = exc.__cause__
                self._failed(dev, f"the API did not answer ({type(cause).__name__}: {cause})")
                return stored_any
            except Unauthorized as exc:
                dev.refused = True
                self._on_refused(device_uuid, exc.message[:200])
                return stored_any
            except ApiRefused as exc:
                if exc.status >= 500 or exc.status in (408, 429):
                    self._failed(dev, f"HTTP {exc.status} {exc.message[:200]}")
                    return stored_any
                # The batch itself is refused (never expected: bad rows are reported one by one). Keep it
                # aside, never loop on it.
                self._forget(dev, taken)
                for segment in taken:
                    segment.path.rename(segment.path.with_suffix(".refused"))
                log.error("ingest refused a batch of %s: %s", device_uuid, exc.message[:200])
                continue
            self._forget(dev, taken)
            self.stats.batches += 1
            self.stats.stored += int(answer.get("inserted", 0))
            self.stats.duplicates += int(answer.get("duplicates", 0))
            self.stats.rejected += int(answer.get("rejected", 0))
            for problem in answer.get("errors") or []:
                log.warning("entry refused by the database: %s", problem)
            for segment in taken:
                segment.path.unlink(missing_ok=True)
            if dev.failures:
                log.info("the API answers again: draining the spool of %s", device_uuid)
            dev.failures = 0
            stored_any = True
        return stored_any

    def _forget(self, dev: _Device, taken: list[_Segment]) -> None:
        done = {id(segment) for segment in taken}
        dev.segments = [segment for segment in dev.segments if id(segment) not in done]

    def _failed(self, dev: _Device, why: str) -> None:
        self.stats.failed_posts += 1
        if dev.failures == 0:
            log.warning("writing entries failed, kept in the spool and retried: %s", why)
        dev.retry_at = time.monotonic() + BACKOFF[min(dev.failures, len(BACKOFF) - 1)]
        dev.failures += 1
        for segment in dev.segments[1:]:
            segment.body = None  # while the API is away, the backlog waits on disk, not in memory
