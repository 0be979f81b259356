"""`busymate tail`: a workspace's captured traffic, live in the terminal (or as JSON lines for scripts).

It joins the private topic `ws:<workspace_id>` on /realtime/v1 under the CLI's own token (`busymate login`'s
session, else the local admin), prints each entry of each firehose message, and keeps going across dropped
connections: after a reconnect it reads what it missed from /rest/v1/entries and prints that first.
`follow()` is the whole feed as one coroutine, for other commands (`busymate up`) to run until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from busymate.cli.common import err, friendly, settings_from
from busymate.cli.devices import pick_workspace
from busymate.cli.session import acting_token
from busymate.client import Api
from busymate.errors import BusymateError
from busymate.live import JoinRefused, LiveClient
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

Entry = dict[str, Any]
StatusRange = tuple[int, int]
ERROR_STATUS: StatusRange = (-1, -1)  # `--status error`: failed flows (an error, or no status)


# -- filters -------------------------------------------------------------------------------------------


def parse_statuses(values: Iterable[str]) -> tuple[StatusRange, ...]:
    """`200`, `4xx`, `500-599`, `error`, each possibly a comma list; ValueError on anything else."""
    ranges: list[StatusRange] = []
    for value in values:
        for part in (p.strip().lower() for p in value.split(",")):
            if not part:
                continue
            if re.fullmatch(r"\d{3}", part):
                ranges.append((int(part), int(part)))
            elif re.fullmatch(r"[1-9]xx", part):
                ranges.append((int(part[0]) * 100, int(part[0]) * 100 + 99))
            elif m := re.fullmatch(r"(\d{3})-(\d{3})", part):
                low, high = int(m[1]), int(m[2])
                if low > high:
                    raise ValueError(f"{part!r}: the range runs backwards")
                ranges.append((low, high))
            elif part in ("error", "err"):
                ranges.append(ERROR_STATUS)
            else:
                raise ValueError(f"{part!r} is not a status: use 200, 4xx, 500-599 or error")
    return tuple(ranges)


def host_matches(host: str, pattern: str) -> bool:
    """A glob (`*.example.com`, with * ? [..]) matches the whole host; anything else is a substring."""
    host, pattern = host.lower(), pattern.lower()
    if any(c in pattern for c in "*?["):
        return fnmatchcase(host, pattern)
    return pattern in host


def is_error(entry: Mapping[str, Any]) -> bool:
    """A flow that failed: it carries an error, or no status came back."""
    return bool(entry.get("error")) or not entry.get("status")


@dataclass(frozen=True)
class Filters:
    """Client-side filters: any value of one option may match; every option given must match."""

    hosts: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    statuses: tuple[StatusRange, ...] = ()

    @classmethod
    def parse(cls, hosts: Sequence[str], devices: Sequence[str], statuses: Sequence[str]) -> Filters:
        """From the command line options (ValueError on a bad status)."""
        split = [p.strip() for v in hosts for p in v.split(",") if p.strip()]
        return cls(tuple(split), tuple(d.strip() for d in devices if d.strip()), parse_statuses(statuses))

    def match(self, entry: Mapping[str, Any], device_name: str | None) -> bool:
        """Whether an entry (or anything with host, status and device_uuid) passes."""
        if self.hosts and not any(host_matches(str(entry.get("host") or ""), p) for p in self.hosts):
            return False
        if self.devices:
            uuid = str(entry.get("device_uuid") or "").lower()
            name = (device_name or "").casefold()
            if not any(d.lower() == uuid or d.casefold() == name for d in self.devices):
                return False
        if self.statuses:
            status = entry.get("status")
            hit = False
            for low, high in self.statuses:
                if (low, high) == ERROR_STATUS:
                    hit = is_error(entry)
                else:
                    hit = isinstance(status, int) and low <= status <= high
                if hit:
                    break
            if not hit:
                return False
        return True


# -- rendering -----------------------------------------------------------------------------------------


def human_size(size: object) -> str:
    """512 B, 1.5 KB, 12.3 MB (1024-based); `-` when unknown."""
    if not isinstance(size, int | float) or isinstance(size, bool):
        return "-"
    if size < 1024:
        return f"{int(size)} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def human_duration(ms: object) -> str:
    """Milliseconds: `4.2 ms` under 10, `87 ms` above; `-` when unknown."""
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "-"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def parse_time(value: object) -> datetime | None:
    """An ISO timestamp from the server (zone-less means UTC); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def local_time(value: object) -> str:
    """HH:MM:SS.mmm in the local zone."""
    parsed = parse_time(value)
    if parsed is None:
        return "--:--:--.---"
    return parsed.astimezone().strftime("%H:%M:%S.%f")[:-3]


def status_style(entry: Mapping[str, Any]) -> tuple[str, str]:
    """The status as shown (`ERR` for a failed flow) and its colour."""
    status = entry.get("status")
    if is_error(entry):
        return (str(status) if status else "ERR"), "bold red"
    assert isinstance(status, int)
    colour = {2: "green", 3: "cyan", 4: "yellow"}.get(status // 100, "red" if status >= 500 else "")
    return str(status), colour


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


class _Stdout(Console):
    """stdout for the table: a closed pipe (`busymate tail | head`) ends the feed rather than exiting 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise BrokenPipeError


class Printer:
    """Entries and breakpoint events on stdout: aligned lines under a header, or one JSON object a line."""

    TIME, DEVICE, METHOD, STATUS, SIZE, DURATION = 12, 14, 7, 6, 9, 9

    def __init__(self, json_mode: bool, console: Console | None = None) -> None:
        self.json_mode = json_mode
        self.console = console or _Stdout(highlight=False)
        self._header = False

    def _widths(self) -> tuple[int, int]:
        fixed = self.TIME + self.DEVICE + self.METHOD + self.STATUS + self.SIZE + self.DURATION + 7
        rest = max(self.console.width - fixed, 40)
        host = min(max(rest * 2 // 5, 16), 40)
        return host, rest - host

    def header(self) -> None:
        """The column names, once (table mode only)."""
        if self.json_mode or self._header:
            return
        self._header = True
        host, path = self._widths()
        line = " ".join(
            (
                "TIME".ljust(self.TIME),
                "DEVICE".ljust(self.DEVICE),
                "METHOD".ljust(self.METHOD),
                "STATUS".ljust(self.STATUS),
                "HOST".ljust(host),
                "PATH".ljust(path),
                "SIZE".rjust(self.SIZE),
                "DURATION".rjust(self.DURATION),
            )
        )
        self.console.print(Text(line.rstrip(), style="bold"), soft_wrap=True)

    def entry(self, entry: Mapping[str, Any], device_name: str, columns: Sequence[str]) -> None:
        """One entry."""
        if self.json_mode:
            self._json({**{c: entry.get(c) for c in columns}, "device_name": device_name})
            return
        self.header()
        host_w, path_w = self._widths()
        path = str(entry.get("path") or "")
        if entry.get("query"):
            path += f"?{entry['query']}"
        shown, colour = status_style(entry)
        line = Text.assemble(
            (local_time(entry.get("captured_at")).ljust(self.TIME), "dim"),
            " ",
            _fit(device_name, self.DEVICE).ljust(self.DEVICE),
            " ",
            _fit(str(entry.get("method") or ""), self.METHOD).ljust(self.METHOD),
            " ",
            (shown.ljust(self.STATUS), colour),
            " ",
            _fit(str(entry.get("host") or ""), host_w).ljust(host_w),
            " ",
            _fit(path, path_w).ljust(path_w),
            " ",
            human_size(entry.get("response_size")).rjust(self.SIZE),
            " ",
            human_duration(entry.get("duration_ms")).rjust(self.DURATION),
        )
        self.console.print(line, soft_wrap=True)
        if entry.get("error"):  # why it failed, under the host and path, cut to the terminal's width
            indent = self.TIME + self.DEVICE + self.METHOD + self.STATUS + 4
            reason = " ".join(str(entry["error"]).split())
            self.console.print(
                Text.assemble(" " * indent, (_fit(f"↳ {reason}", self.console.width - indent), "red")),
                soft_wrap=True,
            )

    def breakpoint(self, event: Mapping[str, Any], device_name: str) -> None:
        """A paused flow, or how one was resolved."""
        if self.json_mode:
            self._json(dict(event))
            return
        self.header()
        what = str(event["event"])
        moment = event.get("resolved_at") if what != "paused" else event.get("paused_at")
        target = f"{event.get('host') or ''}{event.get('path') or ''}"
        flow = " ".join(str(x) for x in (event.get("method"), target) if x)
        line = Text.assemble(
            (local_time(moment).ljust(self.TIME), "dim"),
            " ",
            _fit(device_name, self.DEVICE).ljust(self.DEVICE),
            " ",
            (f"⏸ {what}" if what == "paused" else f"▶ {what}", "bold magenta"),
            f" at the {event.get('phase')}: {flow or event.get('flow_id')}",
        )
        self.console.print(line, soft_wrap=True)

    def _json(self, value: Mapping[str, Any]) -> None:
        sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()


def breakpoint_event(payload: Mapping[str, Any]) -> Entry | None:
    """A breakpoint_events broadcast as one flat event: `paused`, or the outcome (`continued`, ...)."""
    record = payload.get("record")
    if not isinstance(record, dict):
        return None
    old = payload.get("old_record")
    if payload.get("operation") == "INSERT" or not isinstance(old, dict):
        what = "paused" if record.get("active", True) else str(record.get("outcome") or "resolved")
    elif old.get("active") and not record.get("active"):
        what = str(record.get("outcome") or "resolved")
    else:
        return None  # an update that resolves nothing
    snapshot = record.get("snapshot") if isinstance(record.get("snapshot"), dict) else {}
    assert isinstance(snapshot, dict)
    return {
        "kind": "breakpoint",
        "event": what,
        "id": record.get("id"),
        "breakpoint_id": record.get("breakpoint_id"),
        "device_uuid": record.get("device_uuid"),
        "flow_id": record.get("flow_id"),
        "phase": record.get("phase"),
        "method": snapshot.get("method"),
        "host": snapshot.get("host"),
        "path": snapshot.get("path"),
        "status": snapshot.get("status"),
        "paused_at": record.get("paused_at"),
        "resolved_at": record.get("resolved_at"),
        "outcome": record.get("outcome"),
    }


def token_expiry(token: str) -> float | None:
    """The `exp` of a JWT, unverified (only to know when to refresh it)."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


# -- the feed ------------------------------------------------------------------------------------------


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
        self._http = httpx.AsyncClient(base_url=settings.url or settings.api_url, timeout=30.0)
        self._anon = settings.anon_key or settings.publishable_key

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    # -- the server --

    async def get(self, path: str, params: dict[str, str]) -> list[Entry]:
        """GET a /rest/v1 list under the current token; BusymateError with the server's message."""
        headers = {"apikey": self._anon, "authorization": f"Bearer {self.token}"}
        try:
            response = await self._http.get(path, params=params, headers=headers)
        except httpx.ConnectError as exc:
            raise BusymateError(f"the API server does not answer at {self.settings.api_url}") from exc
        except httpx.HTTPError as exc:
            raise BusymateError(f"GET {path} failed: {exc}") from exc
        if response.status_code >= 400:
            raise BusymateError(f"GET {path}: {response.status_code} {response.text[:300]}")
        rows = response.json()
        return rows if isinstance(rows, list) else []

    async def fresh_token(self) -> str:
        """LiveClient's token source: a fresh token, or the last one when the server cannot give one now."""
        async with self._token_lock:  # the client and the refresher may ask at once
            try:
                self.token, self.who = await asyncio.to_thread(acting_token, self.settings)
            except Exception as exc:  # LiveClient's loop must not end here: it retries with the last token
                if not self.token:
                    raise
                if not isinstance(exc.__cause__, httpx.TransportError):  # a down server says so already
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


async def follow(
    settings: Settings,
    workspace_id: str,
    *,
    json_mode: bool = False,
    filters: Filters | None = None,
    exit_after: int | None = None,
    label: str | None = None,
    identity: tuple[str, str] | None = None,
) -> int:
    """Follow a workspace's live feed until cancelled (Ctrl-C) or `exit_after` entries were printed.

    Entries go to stdout (aligned lines, or JSON lines with `json_mode`), notices to stderr. Raises
    BusymateError when the server does not answer or refuses the feed at the start; later drops are survived
    and backfilled. `identity` is (token, who) when the caller already has the CLI's token (`acting_token`).
    Returns the number of entries printed.
    """
    feed = Feed(
        settings,
        workspace_id,
        printer=Printer(json_mode),
        filters=filters or Filters(),
        exit_after=exit_after,
        label=label or workspace_id,
        notices=err,
    )
    client = LiveClient(
        settings.url or settings.api_url,
        settings.anon_key or settings.publishable_key,
        feed.fresh_token,
        feed.on_state,
    )
    refresher: asyncio.Task[None] | None = None
    try:
        if identity is not None:
            feed.token, feed.who = identity
        else:
            await feed.fresh_token()
        await feed.refresh_names(force=True)
        known = {k.lower() for k in feed.names} | {n.casefold() for n in feed.names.values()}
        unknown = [d for d in feed.filters.devices if d.lower() not in known and d.casefold() not in known]
        for ref in unknown:
            err.print(
                f"[yellow]note:[/] no device {escape(repr(ref))} is visible yet; filtering on it anyway",
                soft_wrap=True,
            )
        client.subscribe(feed.topic, feed.on_broadcast)
        try:
            await client.start()
        except JoinRefused as exc:
            raise BusymateError(
                f"{feed.who} may not read the live traffic of workspace {feed.label} "
                f"(entries:view is needed): {exc}"
            ) from exc
        except TimeoutError as exc:
            raise BusymateError(str(exc)) from exc
        refresher = asyncio.create_task(feed.keep_token_fresh(client))
        await feed.done.wait()
        return feed.printed
    finally:
        if refresher is not None:
            refresher.cancel()
        feed.closing = True
        await client.close()
        await feed.aclose()


# -- the command ---------------------------------------------------------------------------------------


def tail(
    ctx: typer.Context,
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace", "-w", help="Workspace slug (default: local, else the first you can see)."
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Only hosts containing this, or matching a glob like '*.example.com'."),
    ] = None,
    device: Annotated[
        list[str] | None, typer.Option("--device", help="Only this device (name or uuid).")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", help="Only these statuses: 200, 4xx, 500-599, error; repeat or comma-separate."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per entry and line on stdout, for scripts.")
    ] = False,
    exit_after: Annotated[
        int | None,
        typer.Option("--exit-after", min=1, help="Exit (status 0) after printing this many entries."),
    ] = None,
) -> None:
    """Watch a workspace's captured traffic live; reconnects by itself and prints what it missed meanwhile."""
    try:
        filters = Filters.parse(host or [], device or [], status or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--status") from exc
    settings = settings_from(ctx)
    try:
        identity = acting_token(settings)
        with Api(settings, identity[0]) as api:
            ws = pick_workspace(api, workspace)
        asyncio.run(
            follow(
                settings,
                str(ws["id"]),
                json_mode=as_json,
                filters=filters,
                exit_after=exit_after,
                label=str(ws["slug"]),
                identity=identity,
            )
        )
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    finally:
        _quiet_stdout_if_gone()


def _quiet_stdout_if_gone() -> None:
    """After `busymate tail | head`, keep Python's own flush at exit from complaining about the pipe."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def register(app: typer.Typer) -> None:
    """Add `busymate tail` to the `busymate` app."""
    app.command()(friendly(tail))
