"""`busymate tail`'s feed: the token, device names, entries seen, and the backfill after a reconnect."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape

from busymate.api_client import AsyncApi
from busymate.api_core import ApiUnreachable
from busymate.cli.session import acting_token
from busymate.cli.tail_filters import Entry, Filters
from busymate.cli.tail_render import Printer, breakpoint_event, parse_time
from busymate.errors import BusymateError
from busymate.live import LiveClient
from busymate.settings import Settings

FIREHOSE_COLUMNS = (
    "id",
    "device_uuid",
    "captured_at",
    "method",
    "scheme",
    "host",
    "path",
    "query",
    "status",
    "response_size",
    "duration_ms",
    "error",
)
"""The columns of a firehose row (the server names them in each message; these are for the backfill)."""
BACKFILL_PAGE = 1000
BACKFILL_MAX = 10_000
BACKFILL_MARGIN = timedelta(seconds=5)  # entries a device uploads a little late are still found
TOKEN_REFRESH = 600.0  # seconds between token refreshes at most
TOKEN_MARGIN = 30.0  # refresh this long before the token expires
TOKEN_MIN_WAIT = 5.0  # but never more often than this
NAMES_THROTTLE = 5.0  # seconds between two device list fetches for unknown uuids
SEEN_MAX = 100_000  # entry ids remembered to skip repeats


def token_expiry(token: str) -> float | None:
    """The `exp` of a JWT, unverified (only to know when to refresh it)."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


class Feed:
    """What `follow` keeps: the token, device names, entries seen, the gap to backfill after a reconnect."""

    def __init__(
        self,
        settings: Settings,
        workspace_id: str,
        *,
        printer: Printer,
        filters: Filters,
        exit_after: int | None,
        label: str,
        notices: Console,
    ) -> None:
        self.settings = settings
        self.workspace_id = workspace_id
        self.printer = printer
        self.filters = filters
        self.exit_after = exit_after
        self.label = label
        self.notices = notices
        self.topic = f"ws:{workspace_id}"
        self.token = ""
        self.who = ""
        self.printed = 0
        self.done = asyncio.Event()
        self.columns: tuple[str, ...] = FIREHOSE_COLUMNS
        self.names: dict[str, str] = {}
        self._names_at = 0.0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_seen: datetime | None = None
        self._joined_at: datetime | None = None
        self._gap_since: datetime | None = None
        self._lock = asyncio.Lock()
        self._said: set[str] = set()  # notices that repeat while disconnected are said once
        self._token_lock = asyncio.Lock()
        self.closing = False  # set before the client closes the socket: its last states are ours, not news
        self.api = AsyncApi(
            settings.url or settings.api_url, settings.anon_key or settings.publishable_key, self._token
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.api.aclose()

    def _token(self) -> str:
        return self.token

    # -- the server --

    async def get(self, path: str, params: dict[str, str]) -> list[Entry]:
        """GET a /rest/v1 list under the current token; ApiRefused with the server's message, ApiUnreachable
        when it does not answer."""
        rows = await self.api.request("GET", path, params=params)
        return rows if isinstance(rows, list) else []

    async def fresh_token(self) -> str:
        """LiveClient's token source: a fresh token, or the last one when the server cannot give one now."""
        async with self._token_lock:  # the client and the refresher may ask at once
            try:
                self.token, self.who = await asyncio.to_thread(acting_token, self.settings)
            except Exception as exc:  # LiveClient's loop must not end here: it retries with the last token
                if not self.token:
                    raise
                if not isinstance(exc, ApiUnreachable):  # a down server says so already
                    self.notice_once(f"[yellow]could not get a fresh token:[/] {escape(str(exc))}")
            return self.token

    def notice_once(self, message: str) -> None:
        """A notice on stderr, unless it was said since the last (re)connect."""
        if message not in self._said:
            self._said.add(message)
            self.notices.print(message, soft_wrap=True)

    async def refresh_names(self, *, force: bool = False) -> None:
        """Device names by uuid, fetched again at most every few seconds (unless forced)."""
        if not force and time.monotonic() - self._names_at < NAMES_THROTTLE:
            return
        self._names_at = time.monotonic()
        rows = await self.get("/rest/v1/devices", {"select": "uuid,name"})
        self.names.update({str(r["uuid"]): str(r["name"]) for r in rows})

    async def device_name(self, uuid: object) -> str:
        """The device's name; its uuid's first block when it is unknown (deleted, or not visible)."""
        key = str(uuid or "")
        if key and key not in self.names:
            with contextlib.suppress(BusymateError):
                await self.refresh_names()
        return self.names.get(key) or key[:8]

    # -- entries --

    def _remember(self, entry: Mapping[str, Any]) -> bool:
        """False for an entry already handled (live and backfilled, or sent twice)."""
        key = str(entry.get("id"))
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        captured = parse_time(entry.get("captured_at"))
        if captured is not None and (self._last_seen is None or captured > self._last_seen):
            self._last_seen = captured
        return True

    async def show(self, entry: Mapping[str, Any]) -> bool:
        """Print one entry unless seen before, filtered out or past --exit-after; whether it was printed."""
        if self.done.is_set() or not self._remember(entry):
            return False
        name = await self.device_name(entry.get("device_uuid"))
        if not self.filters.match(entry, name):
            return False
        self.printer.entry(entry, name, self.columns)
        self.printed += 1
        if self.exit_after is not None and self.printed >= self.exit_after:
            self.done.set()
        return True

    async def on_broadcast(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        """A message on ws:<workspace_id>: a batch of entries, or a breakpoint event."""
        try:
            async with self._lock:
                if payload.get("table") == "breakpoint_events":
                    await self._breakpoint(payload)
                elif event == "INSERT" and payload.get("table", "entries") == "entries":
                    for entry in self._entries(payload):
                        await self.show(entry)
        except BrokenPipeError:
            self.done.set()  # `busymate tail | head`: the reader has gone
        except Exception as exc:  # one odd message must not end the feed
            self.notices.print(
                f"[yellow]skipped a message on {escape(topic)}:[/] {escape(repr(exc))}", soft_wrap=True
            )

    def _entries(self, payload: Mapping[str, Any]) -> list[Entry]:
        columns, rows = payload.get("columns"), payload.get("rows")
        if isinstance(columns, list) and isinstance(rows, list):
            self.columns = tuple(str(c) for c in columns)
            return [dict(zip(self.columns, row, strict=False)) for row in rows if isinstance(row, list)]
        record = payload.get("record")
        return [record] if isinstance(record, dict) else []

    async def _breakpoint(self, payload: Mapping[str, Any]) -> None:
        event = breakpoint_event(payload)
        if event is None or self.done.is_set() or self.filters.statuses:
            return
        name = await self.device_name(event.get("device_uuid"))
        if self.filters.match({**event, "status": 0}, name):
            self.printer.breakpoint({**event, "device_name": name}, name)

    # -- the connection --

    async def on_state(self, state: str, detail: str) -> None:
        """LiveClient's states, as notices on stderr; a rejoin backfills what was missed."""
        if self.closing:
            return
        try:
            await self._on_state(state, detail)
        except Exception as exc:  # an exception here would end LiveClient's connection loop
            self.notices.print(f"[yellow]{state}:[/] {escape(repr(exc))}", soft_wrap=True)

    async def _on_state(self, state: str, detail: str) -> None:
        if state in ("joined", "rejoined") and self._joined_at is None:
            self._joined_at = datetime.now(UTC)
            self.notices.print(
                f"[green]connected:[/] following workspace {escape(self.label)} as {escape(self.who)} "
                "(Ctrl-C to stop)",
                soft_wrap=True,
            )
            self.printer.header()
        elif state == "rejoined":
            self.notices.print("[green]reconnected[/]: reading what was missed", soft_wrap=True)
            self._said.clear()
            await self.backfill()
        elif state == "disconnected" and self._joined_at is not None:
            if self._gap_since is None:
                base = self._last_seen or self._joined_at
                self._gap_since = base - BACKFILL_MARGIN
                self.notices.print(
                    f"[yellow]disconnected[/] ({escape(detail)}); reconnecting…", soft_wrap=True
                )
        elif state == "refused":
            self.notice_once(f"[yellow]the server closed the feed:[/] {escape(detail)}")

    async def missed(self, since: datetime) -> tuple[list[Entry], bool]:
        """Entries captured after `since`, oldest first (at most BACKFILL_MAX); whether there were more."""
        found: list[Entry] = []
        while len(found) < BACKFILL_MAX:
            page = await self.get(
                "/rest/v1/entries",
                {
                    "select": ",".join(self.columns),
                    "workspace_id": f"eq.{self.workspace_id}",
                    "captured_at": f"gt.{since.isoformat()}",
                    "order": "captured_at.asc,id.asc",
                    "limit": str(BACKFILL_PAGE),
                    "offset": str(len(found)),
                },
            )
            found.extend(page)
            if len(page) < BACKFILL_PAGE:
                return found, False
        return found, True

    async def backfill(self) -> int:
        """Print what was captured while the feed was away (not what was shown); how many were printed."""
        since = self._gap_since
        if since is None:
            return 0
        async with self._lock:
            try:
                rows, more = await self.missed(since)
            except BusymateError as exc:
                self.notices.print(
                    f"[yellow]could not read what was missed:[/] {escape(str(exc))}", soft_wrap=True
                )
                return 0  # the gap stays open: the next reconnect tries again
            self._gap_since = None
            printed = 0
            try:
                for row in rows:
                    printed += await self.show(row)
            except BrokenPipeError:
                self.done.set()
                return printed
        note = f"backfilled {printed} {'entry' if printed == 1 else 'entries'} missed while disconnected"
        if more:
            note += f" (only the first {BACKFILL_MAX} were read)"
        self.notices.print(note, soft_wrap=True)
        return printed

    async def keep_token_fresh(self, client: LiveClient) -> None:
        """Hand the channel a fresh token before the current one expires (at least every 10 minutes)."""
        while True:
            expires = token_expiry(self.token)
            left = TOKEN_REFRESH if expires is None else expires - time.time() - TOKEN_MARGIN
            await asyncio.sleep(min(TOKEN_REFRESH, max(left, TOKEN_MIN_WAIT)))
            before = self.token
            await self.fresh_token()
            if self.token != before:
                try:
                    await client.set_token(self.token)
                except Exception as exc:  # a socket going away: the reconnect sends the new token anyway
                    self.notice_once(f"[yellow]could not hand over a fresh token:[/] {escape(repr(exc))}")
