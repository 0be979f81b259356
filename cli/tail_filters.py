"""`busymate tail`'s filters: which entries `--host`, `--device` and `--status` let through."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated, Any

import typer

# The filter options `busymate tail` and `busymate export` share, declared once.
HostOption = Annotated[
    list[str] | None,
    typer.Option("--host", help="Only hosts containing this, or matching a glob like '*.example.com'."),
]
DeviceOption = Annotated[list[str] | None, typer.Option("--device", help="Only this device (name or uuid).")]
StatusOption = Annotated[
    list[str] | None,
    typer.Option("--status", help="Only these statuses: 200, 4xx, 500-599, error; repeat or comma-separate."),
]

Entry = dict[str, Any]
StatusRange = tuple[int, int]
ERROR_STATUS: StatusRange = (-1, -1)  # `--status error`: failed flows (an error, or no status)


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
