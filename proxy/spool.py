"""Durable writes: captured flows go to a per-device on-disk spool, then to `ingest_entries` in batches.

The proxy's hooks only append a row to memory (`Writer.put`). Every `interval` the writer moves what was
captured into a segment file (`<spool>/<device_uuid>/<time>-<n>.json`, written to a temporary name and
renamed, so a segment is whole or absent), then posts the oldest segments of each device to
`/rest/v1/rpc/ingest_entries` under that device's credential and deletes them once the database answered. Rows
carry their own ids, so a segment resent after a crash or a lost answer is stored once (`ingest_entries`
counts the rest as duplicates). While the API is down, segments pile up on disk (not in memory) and drain,
oldest first, when it returns. A 401 means the device's credential was voided: its segments stay on disk, and
the proxy is told so it closes that device's port.
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

log = logging.getLogger("busymate.proxy")

MAX_ROWS = 500  # rows per ingest_entries call (the RPC takes at most 1000)
MAX_BYTES = 8 * 1024 * 1024  # and about this much JSON, far under the API's body limit
BACKOFF = (0.25, 0.5, 1.0, 2.0, 5.0)


@dataclass
class _Device:
    rows: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0
    failures: int = 0
    retry_at: float = 0.0
    refused: bool = False


@dataclass
class Stats:
    """What the writer did, for logs and tests."""

    captured: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed_posts: int = 0


class Writer:
    """Batches rows per device through the spool into the database."""

    def __init__(
        self,
        spool_dir: Path,
        api_url: str,
        apikey: str,
        token_for: Callable[[str], str | None],
        on_refused: Callable[[str, str], None],
        interval: float = 0.05,
    ) -> None:
        self.spool_dir = spool_dir
        self._token_for = token_for
        self._on_refused = on_refused
        self._interval = interval
        self._apikey = apikey
        self._devices: dict[str, _Device] = {}
        self._wake = asyncio.Event()
        self._http = httpx.AsyncClient(base_url=api_url, timeout=httpx.Timeout(30.0, connect=3.0))
        self._seq = 0
        self.stats = Stats()
        self._task: asyncio.Task[None] | None = None
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def put(self, device_uuid: str, row: dict[str, Any], size_hint: int = 0) -> None:
        """Queue one captured flow (cheap: called from the proxy's hooks)."""
        dev = self._devices.setdefault(device_uuid, _Device())
        dev.rows.append(row)
        dev.size += size_hint + 600
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
            if folder.is_dir() and any(folder.glob("*.json")):
                self._devices.setdefault(folder.name, _Device())
        self._task = asyncio.create_task(self._run(), name="busymate-writer")

    async def stop(self, drain_for: float = 5.0) -> None:
        """Spool what is queued, drain for up to `drain_for` seconds, stop (what remains stays on disk)."""
        await self._spool_queued()
        deadline = time.monotonic() + drain_for
        while time.monotonic() < deadline and self.pending_segments():
            if not await self._post_all():
                await asyncio.sleep(0.2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()

    def pending_segments(self) -> int:
        """Segments on disk for devices not refused."""
        return sum(
            len(list((self.spool_dir / d).glob("*.json")))
            for d, dev in self._devices.items()
            if not dev.refused
        )

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self._spool_queued()
                await self._post_all()
            except Exception:  # never let one bad cycle end the writer
                log.exception("writer cycle failed")
                await asyncio.sleep(1)

    async def _spool_queued(self) -> None:
        batches = []
        for device_uuid, dev in self._devices.items():
            if dev.rows:
                batches.append((device_uuid, dev.rows))
                dev.rows, dev.size = [], 0
        if batches:
            await asyncio.to_thread(self._write_segments, batches)

    def _write_segments(self, batches: list[tuple[str, list[dict[str, Any]]]]) -> None:
        for device_uuid, rows in batches:
            folder = self.spool_dir / device_uuid
            folder.mkdir(exist_ok=True, mode=0o700)
            for start in range(0, len(rows), MAX_ROWS):
                self._seq += 1
                name = f"{time.time_ns():020d}-{self._seq:06d}.json"
                tmp = folder / f".{name}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(orjson.dumps(rows[start : start + MAX_ROWS]))
                tmp.rename(folder / name)

    async def _post_all(self) -> bool:
        """Post one round for every device that is due; True when something was stored."""
        now = time.monotonic()
        due = [d for d, dev in self._devices.items() if not dev.refused and dev.retry_at <= now]
        results = await asyncio.gather(*(self._post_device(d) for d in due))
        return any(results)

    def _next_batch(self, device_uuid: str) -> tuple[list[Path], bytes]:
        """The oldest segments of a device merged up to MAX_ROWS rows, as one JSON body."""
        folder = self.spool_dir / device_uuid
        segments = sorted(folder.glob("*.json")) if folder.is_dir() else []
        taken: list[Path] = []
        rows: list[Any] = []
        size = 0
        for path in segments:
            data = path.read_bytes()
            part = orjson.loads(data)
            if taken and (len(rows) + len(part) > MAX_ROWS or size + len(data) > MAX_BYTES):
                break
            taken.append(path)
            rows.extend(part)
            size += len(data)
        if not taken:
            return [], b""
        return taken, orjson.dumps({"batch": rows})

    async def _post_device(self, device_uuid: str) -> bool:
        dev = self._devices[device_uuid]
        stored_any = False
        while True:
            taken, body = await asyncio.to_thread(self._next_batch, device_uuid)
            if not taken:
                return stored_any
            token = self._token_for(device_uuid)
            if token is None:
                dev.refused = True
                log.warning(
                    "device %s has no credential: %d segment(s) wait in the spool", device_uuid, len(taken)
                )
                return stored_any
            try:
                response = await self._http.post(
                    "/rest/v1/rpc/ingest_entries",
                    content=body,
                    headers={
                        "apikey": self._apikey,
                        "authorization": f"Bearer {token}",
                        "content-type": "application/json",
                    },
                )
            except httpx.HTTPError as exc:
                self._failed(dev, f"the API did not answer ({type(exc).__name__}: {exc})")
                return stored_any
            if response.status_code == 401:
                dev.refused = True
                reason = _reason(response)
                self._on_refused(device_uuid, reason)
                return stored_any
            if response.status_code >= 500 or response.status_code in (408, 429):
                self._failed(dev, f"HTTP {response.status_code} {_reason(response)}")
                return stored_any
            if response.status_code >= 400:
                # The batch itself is refused (never expected: bad rows are reported one by one). Keep it
                # aside, never loop on it.
                for path in taken:
                    path.rename(path.with_suffix(".refused"))
                log.error("ingest refused a batch of %s: %s", device_uuid, _reason(response))
                continue
            answer = response.json()
            self.stats.stored += int(answer.get("inserted", 0))
            self.stats.duplicates += int(answer.get("duplicates", 0))
            self.stats.rejected += int(answer.get("rejected", 0))
            for problem in answer.get("errors") or []:
                log.warning("entry refused by the database: %s", problem)
            for path in taken:
                path.unlink(missing_ok=True)
            if dev.failures:
                log.info("the API answers again: draining the spool of %s", device_uuid)
            dev.failures = 0
            stored_any = True

    def _failed(self, dev: _Device, why: str) -> None:
        self.stats.failed_posts += 1
        if dev.failures == 0:
            log.warning("writing entries failed, kept in the spool and retried: %s", why)
        dev.retry_at = time.monotonic() + BACKOFF[min(dev.failures, len(BACKOFF) - 1)]
        dev.failures += 1


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("msg") or body)[:200]
    return str(body)[:200]
