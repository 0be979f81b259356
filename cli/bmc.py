"""`bmc`: the Chrome DevTools capture connector (its commands arrive with the capture issues)."""

from __future__ import annotations

from typing import Annotated

import typer

from busymate import __version__

app = typer.Typer(
    name="bmc",
    help="Capture Chrome's traffic over the DevTools protocol into Busymate.",
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Busymate's Chrome connector."""
    typer.echo(f"bmc {__version__}")
