"""`busymate status`: what is running, with the key names `supabase status` uses."""

from __future__ import annotations

import json
from enum import StrEnum

from rich.table import Table

from busymate.cli.common import out
from busymate.settings import Settings
from busymate.stack.postgres import Cluster


class Output(StrEnum):
    """The formats `supabase status -o` offers."""

    pretty = "pretty"
    json = "json"
    env = "env"


def status_values(settings: Settings) -> dict[str, str]:
    """The keys of `supabase status` that this stack serves so far."""
    return {"DB_URL": settings.db_url()}


def print_status(settings: Settings, output: Output) -> bool:
    """Print the status in `output` form; returns whether the database is running."""
    running = Cluster(settings).status().running
    values = status_values(settings)
    if output is Output.json:
        out.print_json(json.dumps(values))
    elif output is Output.env:
        for key, value in values.items():
            out.print(f'{key}="{value}"', soft_wrap=True)
    else:
        table = Table(show_header=False, box=None)
        table.add_row("Database", "[green]running[/]" if running else "[red]stopped[/]")
        for key, value in values.items():
            table.add_row(key.replace("_", " ").title().replace("Db ", "DB ").replace("Url", "URL"), value)
        out.print(table)
    return running
