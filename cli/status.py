"""`busymate status`: what is running, with the key names `supabase status` uses."""

from __future__ import annotations

import json
from enum import StrEnum

from rich.table import Table

from busymate import tokens
from busymate.cli.common import out
from busymate.settings import Settings
from busymate.stack.api import ApiServer
from busymate.stack.postgres import Cluster


class Output(StrEnum):
    """The formats `supabase status -o` offers."""

    pretty = "pretty"
    json = "json"
    env = "env"


def status_values(settings: Settings) -> dict[str, str]:
    """The keys `supabase status` prints, for the parts this stack serves."""
    api = settings.api_url
    return {
        "API_URL": api,
        "REST_URL": f"{api}/rest/v1",
        "REALTIME_URL": f"ws://{settings.api_host}:{settings.api_port}/realtime/v1",
        "FUNCTIONS_URL": f"{api}/functions/v1",
        "DB_URL": settings.db_url(),
        "JWT_SECRET": settings.jwt_secret,
        "ANON_KEY": tokens.anon_key(settings.jwt_secret),
        "SERVICE_ROLE_KEY": tokens.service_role_key(settings.jwt_secret),
        "PUBLISHABLE_KEY": settings.publishable_key,
        "SECRET_KEY": settings.secret_key,
    }


_LABELS = {
    "API_URL": "API URL", "REST_URL": "REST URL", "REALTIME_URL": "Realtime URL",
    "FUNCTIONS_URL": "Functions URL", "DB_URL": "DB URL", "JWT_SECRET": "JWT secret", "ANON_KEY": "anon key",
    "SERVICE_ROLE_KEY": "service_role key",
    "PUBLISHABLE_KEY": "Publishable key", "SECRET_KEY": "Secret key",
}  # fmt: skip


def print_status(settings: Settings, output: Output, *, require_api: bool = False) -> bool:
    """Print the status in `output` form; returns whether what should run is running."""
    db_running = Cluster(settings).status().running
    api_running = ApiServer(settings).pid() is not None
    values = status_values(settings)
    if output is Output.json:
        out.print_json(json.dumps(values))
    elif output is Output.env:
        for key, value in values.items():
            out.print(f'{key}="{value}"', soft_wrap=True)
    else:
        table = Table(show_header=False, box=None)
        table.add_row("Database", "[green]running[/]" if db_running else "[red]stopped[/]")
        table.add_row("API server", "[green]running[/]" if api_running else "[red]stopped[/]")
        for key, value in values.items():
            table.add_row(_LABELS[key], value)
        out.print(table)
    return db_running and (api_running or not require_api)
