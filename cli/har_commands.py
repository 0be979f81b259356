"""`busymate export --har FILE` and `busymate import FILE.har --device NAME` (the work is in cli/har.py)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn

from busymate.cli.common import err, friendly, settings_from
from busymate.cli.devices import device_token, find_device, pick_workspace
from busymate.cli.har import ExportScope, export_har, import_har, parse_when, read_har, report_import
from busymate.cli.session import acting_token
from busymate.cli.tail_filters import DeviceOption, Filters, HostOption, StatusOption
from busymate.client import Api
from busymate.errors import BusymateError

BIG = 200  # entries beyond which a terminal shows progress


@contextlib.contextmanager
def _progress(what: str) -> Iterator[Callable[[str], None] | None]:
    """A one-line progress display on stderr when it is a terminal; None otherwise."""
    if not err.is_terminal:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=True) as bar:
        task = bar.add_task(what)
        yield lambda text: bar.update(task, description=text)


@contextlib.contextmanager
def _target(path: str) -> Iterator[IO[str]]:
    """stdout for `-`, else the file, written under a temporary name and renamed when complete (a failed
    export leaves no half file); a file that cannot be written is one line, not a traceback."""
    if path == "-":
        try:
            yield sys.stdout
            sys.stdout.flush()
        except BrokenPipeError:  # `busymate export --har - | head`: the reader has gone
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    final = Path(path)
    tmp = final.with_name(f".{final.name}.part")
    try:
        try:
            with tmp.open("w", encoding="utf-8") as handle:
                yield handle
            tmp.replace(final)
        except OSError as exc:
            raise BusymateError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _when(value: str | None, option: str) -> datetime | None:
    try:
        return parse_when(value) if value else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def export(
    ctx: typer.Context,
    har: Annotated[str, typer.Option("--har", help="Write HAR 1.2 to this file ('-' for stdout).")],
    workspace: Annotated[
        str | None,
        typer.Option("--workspace", "-w", help="Only this workspace (slug); default: all you see."),
    ] = None,
    host: HostOption = None,
    device: DeviceOption = None,
    status: StatusOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Captured at or after: an ISO time or an age (30m, 2h, 7d).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Captured before: an ISO time or an age (30m, 2h, 7d).")
    ] = None,
    include_secrets: Annotated[
        bool,
        typer.Option(
            "--include-secrets",
            help="Keep Authorization, cookies, API keys and token-like query parameters (else redacted).",
        ),
    ] = False,
) -> None:
    """Export captured entries as a HAR 1.2 file (bodies, timings, WebSocket messages; secrets redacted)."""
    try:
        filters = Filters.parse(host or [], device or [], status or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--status") from exc
    start, end = _when(since, "--since"), _when(until, "--until")
    if start and end and start >= end:
        raise typer.BadParameter("--since must be before --until", param_hint="--since/--until")
    settings = settings_from(ctx)
    token, _ = acting_token(settings)
    with Api.for_project(settings, token) as api:
        ws = pick_workspace(api, workspace)["id"] if workspace else None
        scope = ExportScope(filters, start, end, str(ws) if ws else None)
        with _progress("exporting…") as show, _target(har) as sink:

            def tick(written: int, scanned: int) -> None:
                if show is not None and scanned >= BIG:
                    show(f"exporting: {written} entries written, {scanned} read")

            count = export_har(api, sink, scope, include_secrets=include_secrets, progress=tick)
    where = "stdout" if har == "-" else har
    secrets = "secrets included" if include_secrets else "secrets redacted"
    err.print(f"exported {count} {'entry' if count == 1 else 'entries'} to {escape(where)} ({secrets})")


def import_(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="A HAR file (from a browser, Playwright, or `busymate export`).")
    ],
    device: Annotated[
        str, typer.Option("--device", help="The device the entries are stored under (name or uuid).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Import a HAR file's entries under a device, keeping their times, bodies, headers and timings.

    Importing the same file again stores nothing twice. Exits 1 when an entry was refused (each is listed)."""
    entries = read_har(file).entries  # not a HAR: say so before anything is asked of the server
    settings = settings_from(ctx)
    token, _ = acting_token(settings)
    with Api.for_project(settings, token) as api:
        found = find_device(api, device)
        minted = device_token(api, found)
    with _progress(f"importing {len(entries)} entries…") as show:

        def tick(sent: int, total: int) -> None:
            if show is not None and total >= BIG:
                show(f"importing: {sent} of {total} entries sent")

        result = import_har(
            file,
            url=settings.url or settings.api_url,
            anon_key=settings.anon_key or settings.publishable_key,
            device_token=minted,
            device_uuid=str(found["uuid"]),
            progress=tick,
        )
    if report_import(
        result, file, device_name=str(found["name"]), device_uuid=str(found["uuid"]), as_json=as_json
    ):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `busymate export` and `busymate import` to the `busymate` app."""
    app.command("export")(friendly(export))
    app.command("import")(friendly(import_))
