"""`busymate tail`'s output: entries and breakpoint events as aligned lines on stdout, or JSON lines."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from busymate.cli.tail_filters import Entry, is_error


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
