"""What the tools share: closed schemas, argument checks, clipping, and naming a device (by uuid or exact
name) through the caller's client."""

from __future__ import annotations

import re
from typing import Any

from busymate.functions.busybro.core import ToolContext, ToolRefused

MAX_ROWS = 50
MAX_CHARS = 300
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

DEVICE_ARG: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "description": "The device: its uuid (preferred, from list_devices) or its exact name.",
}
LIMIT_ARG: dict[str, Any] = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_ROWS,
    "description": f"Rows to return (1-{MAX_ROWS}).",
}


def schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed JSON schema for a tool's input."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def clip(value: Any, limit: int = MAX_CHARS) -> Any:
    """Strings cut at `limit` characters (saying so); lists and objects clipped throughout."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}… [+{len(value) - limit} chars]"
    if isinstance(value, list):
        return [clip(item, limit) for item in value]
    if isinstance(value, dict):
        return {key: clip(item, limit) for key, item in value.items()}
    return value


def clip_row(row: dict[str, Any], limit: int = MAX_CHARS) -> dict[str, Any]:
    """One object with every string in it clipped."""
    return {key: clip(item, limit) for key, item in row.items()}


def is_uuid(value: object) -> bool:
    """Whether `value` is a uuid as text."""
    return isinstance(value, str) and bool(_UUID.match(value))


def limit_arg(args: dict[str, Any], default: int = 20, maximum: int = MAX_ROWS) -> int:
    """The `limit` argument, bounded."""
    value = args.get("limit", default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise ToolRefused(f"limit is a whole number from 1 to {maximum}")
    return value


def text_arg(args: dict[str, Any], name: str, *, required: bool = False, max_len: int = 300) -> str | None:
    """A string argument, stripped; ToolRefused when required and missing, or not a string."""
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ToolRefused(f"{name} is required: a non-empty string")
    if len(value) > max_len:
        raise ToolRefused(f"{name} is at most {max_len} characters")
    return value.strip()


async def resolve_device(ctx: ToolContext, ref: object, *, prefer_owned: bool = False) -> dict[str, Any]:
    """The device `ref` names (a uuid, or an exact name), as the caller's client sees it. With several of the
    same name, `prefer_owned` picks the caller's own when exactly one is; otherwise the model is asked to
    choose by uuid."""
    if not isinstance(ref, str) or not ref.strip():
        raise ToolRefused("device is required: a device uuid (from list_devices) or its exact name")
    ref = ref.strip()
    columns = "uuid,name,owner_user_id,workspace_id,source,connection_type"
    key = "uuid" if is_uuid(ref) else "name"
    rows = await ctx.db.select("devices", {"select": columns, key: f"eq.{ref}", "limit": "20"})
    if prefer_owned and len(rows) > 1:
        owned = [row for row in rows if row.get("owner_user_id") == ctx.identity.user_id]
        rows = owned if len(owned) == 1 else rows
    if not rows:
        raise ToolRefused(f"no device {ref!r} that you can see; call list_devices and pass a uuid")
    if len(rows) > 1:
        mine = [r for r in rows if ctx.identity.grants_all or r.get("owner_user_id") == ctx.identity.user_id]
        names = ", ".join(str(r["uuid"]) for r in mine) or "none of them is yours"
        raise ToolRefused(f"{len(rows)} devices are named {ref!r} ({names}); pass the uuid instead")
    return rows[0]


async def device_names(ctx: ToolContext, uuids: set[str]) -> dict[str, str]:
    """Device names by uuid, for the devices the caller can see among `uuids`."""
    wanted = sorted(u for u in uuids if is_uuid(u))
    if not wanted:
        return {}
    rows = await ctx.db.select("devices", {"select": "uuid,name", "uuid": f"in.({','.join(wanted)})"})
    return {str(row["uuid"]): str(row["name"]) for row in rows}


def require_confirm(args: dict[str, Any], what: str, *, final: bool = True) -> None:
    """ToolRefused unless the caller passed `confirm: true`: the one confirm step of every tool that changes
    much at once (BusyBro's and the MCP server's). `what` says what the call would do, for the model to put
    to the user; `final` adds that it cannot be undone."""
    if args.get("confirm") is not True:
        undo = " It cannot be undone." if final else ""
        raise ToolRefused(
            f"Not done: this would {what}.{undo} Tell the user exactly that, ask them to confirm, then call "
            "again with the same arguments and confirm: true."
        )
