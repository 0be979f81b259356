"""`busymate tail`: a workspace's captured traffic, live in the terminal (or as JSON lines for scripts).

It joins the private topic `ws:<workspace_id>` on /realtime/v1 under the CLI's own token (`busymate login`'s
session, else the local admin), prints each entry of each firehose message, and keeps going across dropped
connections: after a reconnect it reads what it missed from /rest/v1/entries and prints that first.
`follow()` is the whole feed as one coroutine, for other commands (`busymate up`) to run until Ctrl-C.
The feed's state is in tail_feed.py, the filters in tail_filters.py, the output in tail_render.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from busymate.cli.common import err, friendly, settings_from
from busymate.cli.devices import pick_workspace
from busymate.cli.session import acting_token
from busymate.cli.tail_feed import Feed
from busymate.cli.tail_filters import DeviceOption, Filters, HostOption, StatusOption
from busymate.cli.tail_render import Printer
from busymate.client import Api
from busymate.errors import BusymateError
from busymate.live import JoinRefused, LiveClient
from busymate.settings import Settings


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
    client = LiveClient(feed.api.url, feed.api.key, feed.fresh_token, feed.on_state)
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


def tail(
    ctx: typer.Context,
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace", "-w", help="Workspace slug (default: local, else the first you can see)."
        ),
    ] = None,
    host: HostOption = None,
    device: DeviceOption = None,
    status: StatusOption = None,
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
        with Api.for_project(settings, identity[0]) as api:
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
