"""`busymate devices`: add, pair, list, rename, unpair and remove capture devices (as an admin)."""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from busymate.api_core import ApiRefused, NotFound
from busymate.cli.common import err, friendly, out, settings_from
from busymate.cli.session import acting_token
from busymate.client import Api
from busymate.errors import BusymateError
from busymate.settings import Settings

app = typer.Typer(
    help="Capture devices: add and pair them, list, rename, unpair, remove.", no_args_is_help=True
)

NAME_MAX = 100  # devices.name's check
COLUMNS = "uuid,name,source,workspace_id,proxy_port,allowed_sources,paired,last_seen_at,created_at"


class Source(StrEnum):
    """Where a device captures."""

    proxy = "proxy"
    bmc = "bmc"
    ios = "ios"


def _api(settings: Settings) -> Api:
    token, _ = acting_token(settings)
    return Api.for_project(settings, token)


def find_device(api: Api, ref: str) -> dict[str, Any]:
    """A device by uuid or by exact name; BusymateError when none or several match (listing them)."""
    if re.fullmatch(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", ref.strip()
    ):
        rows = api.select("devices", {"select": COLUMNS, "uuid": f"eq.{ref.strip()}"})
    else:
        rows = api.select("devices", {"select": COLUMNS, "name": f"eq.{ref.strip()}"})
    if not rows:
        raise BusymateError(f"no device {ref!r}: see `busymate devices list` for names and uuids")
    if len(rows) > 1:
        slugs = {w["id"]: w["slug"] for w in api.select("workspaces", {"select": "id,slug"})}
        listed = "; ".join(
            f"{r['uuid']} (workspace {slugs.get(r['workspace_id'], r['workspace_id'])}"
            + (f", port {r['proxy_port']}" if r.get("proxy_port") else "")
            + f", added {str(r['created_at'])[:19].replace('T', ' ')})"
            for r in rows
        )
        raise BusymateError(
            f"{len(rows)} devices are named {ref!r}: {listed}. Name the one you mean by its uuid, e.g. "
            f"`busymate devices remove {rows[0]['uuid']}`"
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


def pool_text(pool: range) -> str:
    """`9100-9199`, as BUSYMATE_PROXY_PORTS spells it."""
    return f"{pool.start}-{pool.stop - 1}"


def taken_ports(api: Api) -> dict[int, str]:
    """Proxy ports in use, with the device that holds each (the port is unique across workspaces)."""
    rows = api.select("devices", {"select": "proxy_port,name", "proxy_port": "not.is.null"})
    return {int(d["proxy_port"]): str(d["name"]) for d in rows}


def free_port(api: Api, pool: range) -> int:
    """The first port of the proxy's pool no device holds."""
    taken = taken_ports(api)
    for port in pool:
        if port not in taken:
            return port
    raise BusymateError(
        f"every port of the proxy's pool {pool_text(pool)} is taken: remove a device "
        "(`busymate devices remove NAME`) or widen the pool (BUSYMATE_PROXY_PORTS, e.g. 9100-9299)"
    )


def check_port(api: Api, port: int, pool: range) -> None:
    """A port the proxy will open: inside its pool, and held by no other device."""
    if port not in pool:
        raise BusymateError(
            f"port {port} is outside the proxy's pool {pool_text(pool)} (BUSYMATE_PROXY_PORTS), so the proxy "
            "would never open it: choose a port in the pool, leave out --port for the next free one, or "
            f"widen the pool (BUSYMATE_PROXY_PORTS={min(pool.start, port)}-{max(pool.stop - 1, port)})"
        )
    holder = taken_ports(api).get(port)
    if holder is not None:
        raise BusymateError(
            f"port {port} is already the port of device {holder!r}: choose another, or leave out --port for "
            "the next free one"
        )


def parse_sources(values: list[str]) -> list[str]:
    """CIDRs as Postgres' cidr takes them; BusymateError naming the bad one (and the network it likely is)."""
    parsed = []
    for value in (v.strip() for raw in values for v in raw.split(",")):
        if not value:
            continue
        try:
            parsed.append(str(ipaddress.ip_network(value)))
        except ValueError:
            try:
                near = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise BusymateError(
                    f"--allow {value!r} is not an address or network: give an address (192.168.1.20) or a "
                    "network in CIDR form (192.168.1.0/24, 2001:db8::/32)"
                ) from None
            one = ipaddress.ip_interface(value).ip
            raise BusymateError(
                f"--allow {value!r} has bits set after the /{near.prefixlen} mask, so it is not a network: "
                f"did you mean {near} (the network {one} is in), or {one} (that one address)?"
            ) from None
    return parsed


def check_name(api: Api, name: str, workspace: dict[str, Any], *, other_than: str | None = None) -> str:
    """The name as stored (trimmed): 1-100 characters, and no other device of the workspace has it."""
    trimmed = name.strip()
    if not 1 <= len(trimmed) <= NAME_MAX:
        raise BusymateError(
            f"a device name has 1 to {NAME_MAX} characters (this one has {len(trimmed)}): choose another"
        )
    same = api.select(
        "devices", {"select": "uuid", "workspace_id": f"eq.{workspace['id']}", "name": f"eq.{trimmed}"}
    )
    if any(d["uuid"] != other_than for d in same):
        raise BusymateError(
            f"workspace {workspace['slug']} already has a device named {trimmed!r} ({same[0]['uuid']}): "
            "choose another name, or rename or remove that one (`busymate devices list` shows them)"
        )
    return trimmed


def _refused(exc: ApiRefused, *, port: int | None = None) -> BusymateError:
    """What a refused device write means, for the constraints the CLI cannot check first (a race)."""
    if exc.code == "23505" and "proxy_port" in (exc.message + exc.details):
        return BusymateError(
            f"port {port} was taken by another device meanwhile: run the command again without --port"
        )
    if exc.code == "22P02" and "cidr" in exc.message:
        return BusymateError(f"{exc.message}: give --allow an address or a network like 192.168.1.0/24")
    return exc


def device_token(api: Api, device: dict[str, Any]) -> str:
    """A device token, issued by the backend (POST /functions/v1/device-token) to the caller when they own
    the device or are an admin, as it issues the proxy's."""
    try:
        issued = api.request("POST", "/functions/v1/device-token", json={"device": device["uuid"]})
    except NotFound as exc:
        if device.get("paired") is False:
            raise BusymateError(
                f"device {device['name']!r} is unpaired: pair it with "
                f"`busymate devices pair {device['uuid']}`"
            ) from exc
        raise BusymateError(
            f"only the owner of device {device['name']!r} or an admin may have its token: sign in as one "
            "with `busymate login`"
        ) from exc
    return str(issued["access_token"])


def _print_code(settings: Settings, device: dict[str, Any], activation: dict[str, Any]) -> None:
    out.print(
        f"Device [bold]{escape(device['name'])}[/] ({device['uuid']}), source {device['source']}",
        soft_wrap=True,
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
        int | None,
        typer.Option("--port", help="Proxy port (default: the next free in the pool, BUSYMATE_PROXY_PORTS)."),
    ] = None,
    valid_for: Annotated[
        int, typer.Option("--valid-for", min=1, help="Minutes the activation code lasts.")
    ] = 15,
    token: Annotated[
        bool, typer.Option("--token", help="Also print a device token now (no pairing step).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Add a device and print its one-time activation code (exchange it at /functions/v1/pair)."""
    settings = settings_from(ctx)
    sources = parse_sources(allow) if allow else None
    if port is not None and source is not Source.proxy:
        raise BusymateError(f"only proxy devices have a port: leave out --port for a {source.value} device")
    with _api(settings) as api:
        ws = pick_workspace(api, workspace)
        name = check_name(api, name, ws)
        if port is not None:
            check_port(api, port, settings.proxy_ports)
        elif source is Source.proxy:
            port = free_port(api, settings.proxy_ports)
        try:
            device = api.rpc(
                "create_device",
                {
                    "workspace_id": ws["id"],
                    "name": name,
                    "source": source.value,
                    "allowed_sources": sources,
                    "proxy_port": port,
                },
            )
        except ApiRefused as exc:
            raise _refused(exc, port=port) from exc
        activation = api.rpc(
            "issue_device_activation", {"device_uuid": device["uuid"], "valid_for": f"{valid_for} minutes"}
        )
        minted = device_token(api, device) if token else None
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
    valid_for: Annotated[int, typer.Option("--valid-for", min=1, help="Minutes the code lasts.")] = 15,
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
        for item in listed:  # the proxy opens only ports of its pool
            item["port_in_pool"] = _in_pool(item.get("proxy_port"), settings.proxy_ports)
        out.print_json(json.dumps(listed))
        return
    table = Table("name", "source", "port", "allowed from", "credential", "last seen", "uuid")
    for r in rows:
        table.add_row(
            escape(r["name"]),
            r["source"],
            _port_cell(r["proxy_port"], settings.proxy_ports),
            ", ".join(r["allowed_sources"] or []),
            "[green]active[/]" if r["paired"] else "[red]unpaired[/]",
            ago(r["last_seen_at"]),
            r["uuid"],
        )
    out.print(table)
    if any(_in_pool(r["proxy_port"], settings.proxy_ports) is False for r in rows):
        err.print(
            f"[yellow]note:[/] a port marked 'outside the pool' is not in the proxy's pool "
            f"{pool_text(settings.proxy_ports)} (BUSYMATE_PROXY_PORTS), so the proxy does not open it: "
            "remove the device and add it again without --port, or widen the pool",
            soft_wrap=True,
        )


def _in_pool(port: object, pool: range) -> bool | None:
    return None if not isinstance(port, int) else port in pool


def _port_cell(port: object, pool: range) -> str:
    if not isinstance(port, int):
        return ""
    return str(port) if port in pool else f"{port} [red](outside the pool)[/]"


def ago(value: object, now: datetime | None = None) -> str:
    """A timestamp from the server as `12 s ago`, `5 min ago`, `3 h ago`, `2 days ago`; `never` when null."""
    if not isinstance(value, str) or not value:
        return "never"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''} ago"
    return f"{seconds} s ago"


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
        workspace = api.select("workspaces", {"select": "id,slug", "id": f"eq.{found['workspace_id']}"})
        new_name = check_name(
            api,
            new_name,
            workspace[0] if workspace else {"id": found["workspace_id"], "slug": "?"},
            other_than=found["uuid"],
        )
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


from busymate.cli import simulate as _simulate  # noqa: E402, F401  (registers `devices simulate` on app)
