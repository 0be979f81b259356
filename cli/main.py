"""`busymate`: run the local stack and work with its database."""

from __future__ import annotations

from typing import Annotated

import typer

from busymate import __version__
from busymate.cli import db
from busymate.cli.common import friendly, settings_from
from busymate.cli.status import Output, print_status

app = typer.Typer(
    name="busymate",
    help="Capture HTTPS traffic and watch it live, on a Supabase-style Postgres.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")


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
def status(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="pretty, json or env")] = Output.pretty,
) -> None:
    """Print what is running, with the keys `supabase status` uses (DB_URL, ...)."""
    if not print_status(settings_from(ctx), output):
        raise typer.Exit(1)
