"""`busymate`: run the local stack and work with its database."""

from __future__ import annotations

from typing import Annotated

import typer

from busymate import __version__
from busymate.cli import auth, db, devices, har_commands, mcp, proxy, tail, up
from busymate.cli.common import err, friendly, out, settings_from
from busymate.cli.session import forget_local_sessions
from busymate.cli.status import Output, print_status
from busymate.proxy.state import stop_running
from busymate.stack import migrate
from busymate.stack.api_process import ApiServer
from busymate.stack.postgres import Cluster

app = typer.Typer(
    name="busymate",
    help="Capture HTTPS traffic and watch it live, on a Supabase-style Postgres.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(devices.app, name="devices")
app.add_typer(proxy.app, name="proxy")
auth.register(app)
tail.register(app)
har_commands.register(app)
mcp.register(app)
app.command()(up.up)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"busymate {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Busymate's command line."""


@app.command()
@friendly
def start(ctx: typer.Context) -> None:
    """Start Postgres (migrated) and the API server in the background; return once both answer."""
    settings = settings_from(ctx)
    Cluster(settings).start()
    state = migrate.ensure_ready(settings, progress=lambda line: err.print(f"  {line}"))
    err.print(f"Postgres running on {settings.db_host}:{settings.db_port} (database {state})")
    if state == "created":
        forget_local_sessions(settings)  # sessions of a database that is gone
    pid = ApiServer(settings).start()
    err.print(f"API server running on {settings.api_url} (pid {pid}, log {ApiServer(settings).log_file})")
    print_status(settings, Output.pretty)


@app.command()
@friendly
def stop(ctx: typer.Context) -> None:
    """Stop the proxy, the API server and Postgres; stopping what is stopped is fine."""
    settings = settings_from(ctx)
    if stop_running(settings.state_dir):
        out.print("proxy stopped")
    api = ApiServer(settings).stop()
    db = Cluster(settings).stop()
    out.print(
        f"API server {'stopped' if api else 'was not running'}; "
        f"Postgres {'stopped' if db else 'was not running'}"
    )


@app.command()
@friendly
def status(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="pretty, json or env")] = Output.pretty,
) -> None:
    """Print what is running, with the keys `supabase status` uses (API_URL, DB_URL, ANON_KEY, ...)."""
    if not print_status(settings_from(ctx), output, require_api=True):
        raise typer.Exit(1)
