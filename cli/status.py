"""`busymate status`: what is running, with the key names `supabase status` uses."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from busymate import tokens
from busymate.api_core import NotThisProject
from busymate.cli.common import out
from busymate.client import api_answers
from busymate.proxy.state import state_file
from busymate.settings import Settings
from busymate.stack.postgres import Cluster

PROXY_LOG = "proxy.log"  # where `busymate up` sends the proxy's output


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


@dataclass(frozen=True)
class ProxyState:
    """What the running proxy says about itself in its state file (nothing when it is stopped)."""

    pid: int | None = None
    listen_host: str = ""
    pool: str = ""
    ports: dict[str, str] = field(default_factory=dict)  # open port -> device name
    log: Path | None = None

    @classmethod
    def read(cls, settings: Settings) -> ProxyState:
        """The proxy of this state folder, if one runs."""
        log = settings.state_dir / PROXY_LOG
        try:
            saved = json.loads(state_file(settings.state_dir).read_text())
            pid = int(saved["pid"])
            os.kill(pid, 0)
        except (OSError, ValueError, KeyError, TypeError):
            return cls(log=log if log.exists() else None)
        low, high = (saved.get("pool") or [0, 0])[:2]
        return cls(
            pid=pid,
            listen_host=str(saved.get("listen_host") or ""),
            pool=f"{low}-{high}",
            ports={str(p): str((d or {}).get("name") or "") for p, d in (saved.get("ports") or {}).items()},
            log=log if log.exists() else None,
        )

    def values(self) -> dict[str, str]:
        """PROXY_* keys for -o json|env."""
        found = {"PROXY_PORTS": ",".join(self.ports), "PROXY_POOL": self.pool}
        return found | ({"PROXY_LOG": str(self.log)} if self.log else {})

    def pretty(self) -> list[tuple[str, str]]:
        """Rows for the table."""
        if self.pid is None:
            rows = [("Proxy", "[red]stopped[/] (`busymate up` or `busymate proxy run` starts it)")]
        else:
            opened = (
                ", ".join(f"{p} ({escape(n)})" for p, n in self.ports.items())
                or "none (no paired proxy device)"
            )
            rows = [
                ("Proxy", f"[green]running[/] (pid {self.pid}) on {self.listen_host}, pool {self.pool}"),
                ("Proxy ports", opened),
            ]
        return rows + ([("Proxy log", str(self.log))] if self.log else [])


_LABELS = {
    "API_URL": "API URL", "REST_URL": "REST URL", "REALTIME_URL": "Realtime URL",
    "FUNCTIONS_URL": "Functions URL", "DB_URL": "DB URL", "JWT_SECRET": "JWT secret", "ANON_KEY": "anon key",
    "SERVICE_ROLE_KEY": "service_role key",
    "PUBLISHABLE_KEY": "Publishable key", "SECRET_KEY": "Secret key",
}  # fmt: skip


def print_status(settings: Settings, output: Output, *, require_api: bool = False) -> bool:
    """Print the status in `output` form; returns whether what should run is running. With require_api,
    NotThisProject when another program answers on the API port (its answers are not ours to print)."""
    db_running = Cluster(settings).status().running
    try:
        api_running = api_answers(settings)
        api_shown = "[green]running[/]" if api_running else "[red]stopped[/]"
    except NotThisProject:
        if require_api:
            raise
        api_running, api_shown = False, "[red]another program answers on its port[/] (see `busymate status`)"
    proxy = ProxyState.read(settings)
    values = status_values(settings)
    if output is Output.json:
        out.print_json(json.dumps(values | proxy.values()))
    elif output is Output.env:
        for key, value in (values | proxy.values()).items():
            out.print(f'{key}="{value}"', soft_wrap=True)
    else:
        table = Table(show_header=False, box=None)
        table.add_row("Database", "[green]running[/]" if db_running else "[red]stopped[/]")
        table.add_row("API server", api_shown)
        for key, value in proxy.pretty():
            table.add_row(key, value)
        for key, value in values.items():
            table.add_row(_LABELS[key], value)
        out.print(table)
    return db_running and (api_running or not require_api)
