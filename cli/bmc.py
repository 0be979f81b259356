"""`bmc`: the Chrome DevTools capture connector: pair, launch or attach to Chromium, status, unpair, import.

bmc is a capture device (source `bmc`): it pairs with a one-time activation code (`busymate devices add NAME
--source bmc`), keeps its device credential 0600 under its home (`BMC_HOME`, else
`$XDG_CONFIG_HOME/busymate/bmc`, else `~/.config/busymate/bmc`), and captures what Chrome's Network panel
shows into the workspace through `/functions/v1/ingest` (the capture session: cli/bmc_run.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from busymate import __version__
from busymate.api_core import ApiRefused, ApiUnreachable
from busymate.cli.bmc_run import (
    Session,
    credential_path,
    spool_dir,
    spooled_rows,
    status_path,
)
from busymate.cli.common import err, fail, friendly, out, settings_from
from busymate.errors import BusymateError

app = typer.Typer(
    name="bmc",
    help="Capture Chrome's traffic over the DevTools protocol into Busymate.",
    pretty_exceptions_enable=False,
)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Busymate's Chrome connector."""
    if version:
        typer.echo(f"bmc {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def bmc_home() -> Path:
    """bmc's folder (0700): `BMC_HOME`, else `$XDG_CONFIG_HOME/busymate/bmc`, else
    `~/.config/busymate/bmc`."""
    if os.environ.get("BMC_HOME"):
        home = Path(os.environ["BMC_HOME"]).expanduser()
    else:
        config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        home = config / "busymate" / "bmc"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def _credential(home: Path) -> Any:
    from busymate.device_client import load_credential

    path = credential_path(home)
    try:
        credential = load_credential(path) if path.exists() else None
    except (OSError, ValueError) as exc:
        raise BusymateError(
            f"bmc's credential {path} cannot be read ({exc}): run `bmc pair CODE` again"
        ) from exc
    if credential is None:
        raise BusymateError(
            "bmc is not paired yet: add a device as an admin (`busymate devices add NAME --source bmc`), "
            "then run `bmc pair CODE` with the code it prints"
        )
    return credential


def _when(value: object) -> str:
    """A token expiry (epoch seconds or ISO text) as UTC text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value) if value else "unknown"


@app.command()
@friendly
def pair(
    ctx: typer.Context,
    code: Annotated[
        str, typer.Argument(help="The activation code `busymate devices add --source bmc` printed.")
    ],
    url: Annotated[
        str | None, typer.Option("--url", help="The API's URL (default: BUSYMATE_URL or the local project).")
    ] = None,
    anon_key: Annotated[
        str | None,
        typer.Option(
            "--anon-key", help="The publishable key (default: BUSYMATE_ANON_KEY or the local project)."
        ),
    ] = None,
) -> None:
    """Pair this machine's bmc with a device: the code is used once; the credential is kept 0600."""
    from busymate.device_client import pair as pair_device
    from busymate.device_client import save_credential

    if url is None or anon_key is None:
        settings = settings_from(ctx)
        url = url or settings.url
        anon_key = anon_key or settings.anon_key
    if not url or not anon_key:
        fail("no API to pair with: give --url and --anon-key (or set BUSYMATE_URL and BUSYMATE_ANON_KEY)")
    home = bmc_home()
    try:
        credential = asyncio.run(pair_device(url.rstrip("/"), anon_key, code.strip(), info=None))
    except ApiUnreachable as exc:
        raise BusymateError(
            f"the API at {url} does not answer ({exc}): check the URL (--url), or start it (`busymate start`)"
        ) from exc
    except ApiRefused as exc:
        if exc.status == 400:
            raise BusymateError(
                f"the code was refused ({exc.message}): a code works once and only for a while; "
                "get a new one with `busymate devices pair NAME` (as an admin)"
            ) from exc
        raise
    path = credential_path(home)
    save_credential(path, credential)
    out.print(
        f"paired as device [bold]{credential.name}[/] ({credential.device_uuid}) in workspace "
        f"{credential.workspace_id}; credential in {path}",
        soft_wrap=True,
    )
    out.print("next: `bmc launch URL` starts Chromium and captures it, `bmc attach` a running one")


def _find_browser(chromium: str | None) -> str:
    """The browser to start: --chromium (a path or a name on PATH), else the first of BROWSERS on PATH."""
    if chromium:
        found = shutil.which(chromium) or (chromium if Path(chromium).is_file() else None)
        if found is None:
            raise BusymateError(
                f"--chromium {chromium}: no such program; give the path of Chromium or Chrome"
            )
        return found
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise BusymateError(
        "Chromium was not found: give its path with --chromium PATH, or install it (`apt install chromium`)"
    )


def _tty() -> bool:
    return sys.stdout.isatty()


@app.command()
@friendly
def launch(
    url: Annotated[str | None, typer.Argument(help="A page to open once capture runs.")] = None,
    chromium: Annotated[
        str | None, typer.Option("--chromium", help="Chromium or Chrome to start (default: found on PATH).")
    ] = None,
    headless: Annotated[bool, typer.Option("--headless", help="Start the browser without a window.")] = False,
    chromium_arg: Annotated[
        list[str] | None, typer.Option("--chromium-arg", hidden=True, help="One more argument for Chromium.")
    ] = None,
) -> None:
    """Start Chromium with a debugging port, attach, and capture until the browser closes or Ctrl-C."""
    from busymate.cdp_capture import CdpError, launch_chromium

    home = bmc_home()
    credential = _credential(home)
    executable = _find_browser(chromium)

    async def main(profile: Path) -> int:
        try:
            browser, ws_url = await launch_chromium(
                executable, headless=headless, user_data_dir=profile, extra_args=chromium_arg or []
            )
        except (CdpError, OSError) as exc:
            raise BusymateError(
                f"Chromium ({executable}) did not start ({exc}): check that it runs, or give another with "
                "--chromium PATH"
            ) from exc
        session = Session(credential, home, ws_url, url=url, browser=browser, tty=_tty())
        return await session.run()

    with tempfile.TemporaryDirectory(prefix="bmc-chromium-") as profile:
        code = asyncio.run(main(Path(profile)))
    raise typer.Exit(code)


@app.command()
@friendly
def attach(
    cdp: Annotated[
        str, typer.Option("--cdp", help="The browser's debugging address.")
    ] = "http://127.0.0.1:9222",
    url: Annotated[str | None, typer.Option("--open", help="Also open this page in a new tab.")] = None,
) -> None:
    """Capture a running Chrome or Chromium (started with --remote-debugging-port) until it closes."""
    from busymate.cdp_capture import CdpError, browser_ws_url

    home = bmc_home()
    credential = _credential(home)
    try:
        ws_url = browser_ws_url(cdp)
    except CdpError as exc:
        raise BusymateError(f"{exc}, or let `bmc launch` start one") from exc
    session = Session(credential, home, ws_url, url=url, tty=_tty())
    try:
        code = asyncio.run(session.run())
    except OSError as exc:  # the endpoint went away between the two
        raise BusymateError(f"could not attach to {ws_url} ({exc}): is the browser still running?") from exc
    raise typer.Exit(code)


@app.command()
@friendly
def status() -> None:
    """What bmc is paired as, its token's expiry, and what waits in its spool."""
    import json

    home = bmc_home()
    credential = _credential(home)
    segments, rows = spooled_rows(home, credential.device_uuid)
    out.print(f"device      {credential.name} ({credential.device_uuid}), source {credential.source}")
    out.print(f"workspace   {credential.workspace_id}")
    out.print(f"api         {credential.url}")
    out.print(f"token until {_when(credential.expires_at)}")
    out.print(f"spool       {rows} entries in {segments} segment(s) waiting ({spool_dir(home)})")
    try:
        running = json.loads(status_path(home).read_text())
    except (OSError, ValueError):
        running = None
    fresh = running and time.time() - float(running.get("updated_at") or 0) < 5  # written every 0.5 s
    if fresh and running.get("running") and _alive(running.get("pid")):
        out.print(
            f"capturing   {running.get('browser')}: captured {running.get('captured')}, sent "
            f"{running.get('sent')}, queued {running.get('queued')}, errors {running.get('errors')}"
            + ("  (API unreachable: spooling)" if running.get("api") == "unreachable" else ""),
            soft_wrap=True,
        )
    else:
        out.print("capturing   no (`bmc launch` or `bmc attach`)")


async def _say_offline(credential: Any) -> None:
    """Best effort: the device's status row says it is offline (the dashboard shows it at once)."""
    from busymate.api_client import AsyncApi
    from busymate.api_core import ApiError

    async with AsyncApi(credential.url, credential.anon_key, credential.access_token, timeout=5.0) as api:
        with contextlib.suppress(ApiError):
            await api.request(
                "PATCH",
                "/rest/v1/device_status",
                params={"device_uuid": f"eq.{credential.device_uuid}"},
                json={"online": False},
            )


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@app.command()
@friendly
def unpair() -> None:
    """Forget bmc's credential here (an admin voids its token: `busymate devices unpair NAME`)."""
    from busymate.device_client import forget_credential

    home = bmc_home()
    credential = _credential(home)
    _, rows = spooled_rows(home, credential.device_uuid)
    asyncio.run(_say_offline(credential))
    forget_credential(credential_path(home))
    err.print(
        f"forgot the credential of device {credential.name!r} ({credential.device_uuid}). The device stays "
        f"in its workspace and its token stays valid until an admin runs `busymate devices unpair "
        f"{credential.device_uuid}` (or removes it); `bmc pair CODE` pairs again",
        soft_wrap=True,
    )
    if rows:
        err.print(
            f"{rows} captured entries stay in the spool ({spool_dir(home)}): pair this device again to send"
        )


@app.command("import")
@friendly
def import_file(
    file: Annotated[
        Path, typer.Argument(help="A HAR file (from a browser, Playwright, or `busymate export`).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Import a HAR file's entries under bmc's own device, keeping their times (through /functions/v1/ingest).

    Importing the same file again stores nothing twice. Exits 1 when an entry was refused (each is listed)."""
    from busymate.cli.har import import_har, report_import

    credential = _credential(bmc_home())
    result = import_har(
        file,
        url=credential.url,
        anon_key=credential.anon_key,
        device_token=credential.access_token,
        device_uuid=credential.device_uuid,
    )
    rejected = report_import(
        result, file, device_name=credential.name, device_uuid=credential.device_uuid, as_json=as_json
    )
    if rejected:
        raise typer.Exit(1)
