"""`busymate devices`: add, pair, list, rename, unpair and remove capture devices (as an admin)."""

from __future__ import annotations

import json
import re
import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from busymate.cli.common import err, friendly, out, settings_from
from busymate.cli.session import acting_token
from busymate.client import Api
from busymate.errors import BusymateError
from busymate.functions.pair import device_claims
from busymate.keys import SigningKeys
from busymate.settings import Settings

app = typer.Typer(
    help="Capture devices: add and pair them, list, rename, unpair, remove.", no_args_is_help=True
)

PORT_POOL = range(9100, 9200)
COLUMNS = "uuid,name,source,workspace_id,proxy_port,allowed_sources,paired,last_seen_at,created_at"


class Source(StrEnum):
    """Where a device captures."""

    proxy = "proxy"
    bmc = "bmc"
    ios = "ios"


def _api(settings: Settings) -> Api:
    token, _ = acting_token(settings)
    return Api(settings, token)


def find_device(api: Api, ref: str) -> dict[str, Any]:
    """A device by uuid or by exact name; BusymateError when none or several match."""
    if re.fullmatch(r"[0-9a-fA-F-]{36}", ref):
        rows = api.select("devices", {"select": COLUMNS, "uuid": f"eq.{ref}"})
    else:
        rows = api.select("devices", {"select": COLUMNS, "name": f"eq.{ref}"})
    if not rows:
        raise BusymateError(f"no device {ref!r} (see `busymate devices list`)")
    if len(rows) > 1:
        raise BusymateError(
            f"{len(rows)} devices are named {ref!r}: use the uuid (see `busymate devices list`)"
        )
    return rows[0]


def pick_workspace(api: Api, slug: str | None) -> dict[str, Any]:
    rows = api.select("workspaces", {"select": "id,slug,name", "order": "created_at"})
    if slug is not None:
        rows = [w for w in rows if w["slug"] == slug]
        if not rows:
            raise BusymateError(f"no workspace {slug!r}")
    if not rows:
        raise BusymateError("there is no workspace yet: run `busymate db reset` (the seed makes 'local')")
    local = [w for w in rows if w["slug"] == "local"]
    return local[0] if slug is None and local else rows[0]


def _free_port(api: Api) -> int:
    taken = {
        d["proxy_port"] for d in api.select("devices", {"select": "proxy_port", "proxy_port": "not.is.null"})
    }
    for port in PORT_POOL:
        if port not in taken:
            return port
    raise BusymateError(
        f"every port of the pool {PORT_POOL.start}-{PORT_POOL.stop - 1} is taken: pass --port"
    )


def device_credential(settings: Settings, device: dict[str, Any]) -> str:
    """The device's current credential, which only its owner (with devices:edit) or an admin may have."""
    with _api(settings) as api:
        rows = api.rpc("device_credentials", {"device_uuids": [device["uuid"]]})
    if not rows:
        raise BusymateError(
            f"only the owner of device {device['name']!r} or an admin may have its token: sign in as one "
            "with `busymate login`"
        )
    if not rows[0].get("credential_id"):
        raise BusymateError(
            f"device {device['name']!r} is unpaired: pair it with `busymate devices pair {device['uuid']}`"
        )
    return str(rows[0]["credential_id"])


def device_token(settings: Settings, device: dict[str, Any]) -> str:
    """A device JWT for the device's current credential (asked of the API unless the row carries it), signed
    with the project's key."""
    credential = device.get("credential_id") or device_credential(settings, device)
    keys = SigningKeys.for_project(settings.jwt_secret, settings.state_dir, settings.jwt_alg)
    claims = device_claims(
        {
            "device_uuid": device["uuid"],
            "workspace_id": device["workspace_id"],
            "credential_id": credential,
        },
        settings.auth_url,
        int(time.time()),
        settings.device_token_days,
    )
    return keys.sign(claims)


def _print_code(settings: Settings, device: dict[str, Any], activation: dict[str, Any]) -> None:
    out.print(
        f"Device [bold]{device['name']}[/] ({device['uuid']}), source {device['source']}", soft_wrap=True
    )
    if device.get("proxy_port"):
        out.print(f"  proxy port   {device['proxy_port']}")
    out.print(f"  activation   [bold]{activation['code']}[/] (valid until {activation['expires_at']}, once)")
    out.print(
        f"  pair with    curl -X POST {settings.api_url}/functions/v1/pair "
        f"-H 'content-type: application/json' -d '{{\"code\":\"{activation['code']}\"}}'",
        soft_wrap=True,
    )


@app.command()
@friendly
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name people recognise, e.g. 'Pixel 8' or 'this laptop'.")],
    source: Annotated[Source, typer.Option("--source", help="proxy, bmc or ios.")] = Source.proxy,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Source addresses (CIDR) the proxy accepts; repeat. Default: loopback."),
    ] = None,
    workspace: Annotated[
        str | None, typer.Option("--workspace", help="Workspace slug (default: local).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Proxy port (default: the next free in 9100-9199).")
    ] = None,
    valid_for: Annotated[int, typer.Option("--valid-for", help="Minutes the activation code lasts.")] = 15,
    token: Annotated[
        bool, typer.Option("--token", help="Also print a device token now (no pairing step).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Add a device and print its one-time activation code (exchange it at /functions/v1/pair)."""
    settings = settings_from(ctx)
    with _api(settings) as api:
        ws = pick_workspace(api, workspace)
        if source is Source.proxy and port is None:
            port = _free_port(api)
        device = api.rpc(
            "create_device",
            {
                "workspace_id": ws["id"],
                "name": name,
                "source": source.value,
                "allowed_sources": allow or None,
                "proxy_port": port,
            },
        )
        activation = api.rpc(
            "issue_device_activation", {"device_uuid": device["uuid"], "valid_for": f"{valid_for} minutes"}
        )
    minted = device_token(settings, device) if token else None
    if as_json:
        out.print_json(json.dumps({"device": device, "activation": activation, "access_token": minted}))
        return
    _print_code(settings, device, activation)
    if minted:
        out.print(f"  token        {minted}", soft_wrap=True)


@app.command()
@friendly
def pair(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Name or uuid.")],
    valid_for: Annotated[int, typer.Option("--valid-for", help="Minutes the code lasts.")] = 15,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """A new activation code for a device (pairing with it voids the device's earlier tokens)."""
    settings = settings_from(ctx)
    with _api(settings) as api:
        found = find_device(api, device)
        activation = api.rpc(
            "issue_device_activation", {"device_uuid": found["uuid"], "valid_for": f"{valid_for} minutes"}
        )
    if as_json:
        out.print_json(json.dumps(activation))
        return
    _print_code(settings, found, activation)


@app.command("list")
@friendly
def list_devices(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The devices you can see."""
    settings = settings_from(ctx)
    with _api(settings) as api:
        rows = api.select("devices", {"select": COLUMNS, "order": "created_at"})
    if as_json:
        listed = [dict(r) for r in rows]
        out.print_json(json.dumps(listed))
        return
    table = Table("name", "source", "port", "allowed from", "credential", "last seen", "uuid")
    for r in rows:
        table.add_row(
            r["name"],
            r["source"],
            str(r["proxy_port"] or ""),
            ", ".join(r["allowed_sources"] or []),
            "[green]active[/]" if r["paired"] else "[red]unpaired[/]",
            str(r["last_seen_at"] or "never"),
            r["uuid"],
        )
    out.print(table)


@app.command()
@friendly
def rename(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Name or uuid.")],
    new_name: Annotated[str, typer.Argument(help="The new name.")],
) -> None:
    """Rename a device (the device hears it on its channel)."""
    settings = settings_from(ctx)
    with _api(settings) as api:
        found = find_device(api, device)
        api.rpc("rename_device", {"device_uuid": found["uuid"], "name": new_name})
    err.print(f"renamed {found['name']!r} to {new_name!r}")


@app.command()
@friendly
def unpair(ctx: typer.Context, device: Annotated[str, typer.Argument(help="Name or uuid.")]) -> None:
    """Void a device's credential at once: its next request is refused."""
    settings = settings_from(ctx)
    with _api(settings) as api:
        found = find_device(api, device)
        api.rpc("unpair_device", {"device_uuid": found["uuid"]})
    err.print(
        f"unpaired {found['name']!r}: its tokens no longer work; `busymate devices pair` gives a new code"
    )


@app.command()
@friendly
def remove(ctx: typer.Context, device: Annotated[str, typer.Argument(help="Name or uuid.")]) -> None:
    """Delete a device and everything that hangs off it (the device hears `unpair` first)."""
    settings = settings_from(ctx)
    with _api(settings) as api:
        found = find_device(api, device)
        api.rpc("delete_device", {"device_uuid": found["uuid"]})
    err.print(f"removed {found['name']!r}")
