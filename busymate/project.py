"""What a project remembers about itself in its state folder: who it is and the ports it started on.

- `project-id`: a random id made once. The API server sends it on every answer (`X-Busymate-Project`), and
  the CLI refuses to act on an API that answers with another id or none, so a command run from a shell
  without this project's port variables never talks to another project's server on the default port.
- `ports.json`: the API and database ports the project last started on and its proxy's port pool, read by
  every later command (as the Supabase CLI reads config.toml); a BUSYMATE_* variable in the environment
  still wins.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, overload

from busymate.settings import Settings, parse_port_range

IDENTITY_HEADER = "x-busymate-project"
ID_FILE = "project-id"
PORTS_FILE = "ports.json"

# The settings a project remembers, each with the variable that overrides it.
_REMEMBERED = {
    "api_port": "BUSYMATE_API_PORT",
    "db_port": "BUSYMATE_DB_PORT",
    "proxy_ports": "BUSYMATE_PROXY_PORTS",
}


@overload
def project_id(state_dir: Path) -> str: ...
@overload
def project_id(state_dir: Path, *, create: Literal[False]) -> str | None: ...
def project_id(state_dir: Path, *, create: bool = True) -> str | None:
    """This project's id, made on first use (two processes asking at once get the same one); with
    create=False, None when it has none yet."""
    path = state_dir / ID_FILE
    with contextlib.suppress(FileNotFoundError):
        found = path.read_text().strip()
        if found:
            return found
    if not create:
        return None
    state_dir.mkdir(parents=True, exist_ok=True)
    made = secrets.token_hex(8)
    tmp = path.with_name(f"{ID_FILE}.{os.getpid()}.tmp")
    tmp.write_text(made + "\n")
    try:
        os.link(tmp, path)  # atomic: the first writer wins, later ones read what it wrote
    except FileExistsError:
        made = path.read_text().strip() or made
    finally:
        tmp.unlink(missing_ok=True)
    return made


def remembered(state_dir: Path) -> dict[str, object]:
    """What `remember` stored ({} when nothing or something unreadable was)."""
    try:
        saved = json.loads((state_dir / PORTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def remember(settings: Settings, *names: str) -> None:
    """Store these settings (api_port, db_port, proxy_ports) for the project's later commands."""
    saved = remembered(settings.state_dir)
    for name in names:
        value = getattr(settings, name)
        saved[name] = f"{value.start}-{value.stop - 1}" if isinstance(value, range) else value
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    path = settings.state_dir / PORTS_FILE
    tmp = path.with_name(f"{PORTS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(saved, indent=2) + "\n")
    tmp.replace(path)


def with_remembered(settings: Settings, env: Mapping[str, str]) -> Settings:
    """`settings` with the remembered ports wherever the environment does not name them."""
    saved = remembered(settings.state_dir)
    changes: dict[str, object] = {}
    for name, variable in _REMEMBERED.items():
        value = saved.get(name)
        if env.get(variable) or value is None:
            continue
        if name == "proxy_ports" and isinstance(value, str):
            with contextlib.suppress(ValueError):
                changes[name] = parse_port_range(value)
        elif isinstance(value, int) and 0 < value < 65536:
            changes[name] = value
    return settings.with_overrides(**changes) if changes else settings
