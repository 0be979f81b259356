"""BusyBro's write tools: the seed's capability-gated actions, each one RPC the database checks again.

Offered only when the role may edit the tool's section (and the caller is a known user), re-checked by
`run_tool`. Device writes are ownership-scoped here, in Python (`assert_device_owned`): unless the role
grants_all, the device's owner must be the caller. On Telegram the tools run on the service-role client, which
sees every row and passes every database check, so this check is the boundary there.

Deliberately absent (no tool at all): unpair or delete a device, wipe entries, send a push, roles and users,
workspaces and tabs, arbitrary settings JSON, breakpoint patterns, snapshots.
"""

from __future__ import annotations

from typing import Any

from busymate.functions.busybro.core import Identity, Tool, ToolContext, ToolRefused
from busymate.functions.busybro.tools.common import (
    DEVICE_ARG,
    is_uuid,
    require_confirm,
    resolve_device,
    schema,
    text_arg,
)

_CONNECTION_TYPES = ["vpn", "pac", "proxy", "cdp"]
_ID = {"type": "string", "pattern": "^[0-9a-fA-F-]{36}$", "description": "The row's id (uuid)."}
MAX_AGENTS = 20


def assert_device_owned(identity: Identity, device: dict[str, Any]) -> None:
    """ToolRefused unless the caller grants_all or owns `device` (what protects the service-role client)."""
    if identity.grants_all:
        return
    if identity.user_id is None or device.get("owner_user_id") != identity.user_id:
        # The uuid only: on the service-role client the name of someone else's device is not the caller's.
        raise ToolRefused(
            f"device {device.get('uuid')} is not your device: only its owner or an admin may change it. "
            "Call list_devices with mine=true to see yours."
        )


async def owned_device(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """The device the arguments name, resolved through ctx.db, and owned by the caller."""
    device = await resolve_device(ctx, args.get("device"), prefer_owned=True)
    assert_device_owned(ctx.identity, device)
    return device


def _uuid_arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not is_uuid(value):
        raise ToolRefused(f"{name} is required: a uuid (from the matching list tool)")
    return str(value)


def _strings(args: dict[str, Any], name: str, max_items: int = 100) -> list[str] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > max_items or not all(isinstance(v, str) for v in value):
        raise ToolRefused(f"{name} is a list of at most {max_items} strings")
    return [v.strip() for v in value if v.strip()]


def _summary(device: dict[str, Any], **changed: Any) -> dict[str, Any]:
    return {"ok": True, "device": {"uuid": device["uuid"], "name": device["name"]}, **changed}


async def set_live_activity_message(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Set (or clear, with an empty message) a device's Live Activity message."""
    device = await owned_device(ctx, args)
    message = args.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > 500):
        raise ToolRefused("message is a string of at most 500 characters (empty or null clears it)")
    message = message.strip() if message else None
    row = await ctx.db.rpc("set_live_activity_message", {"device_uuid": device["uuid"], "message": message})
    return _summary(device, live_activity_message=(row or {}).get("live_activity_message"))


async def rename_device(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Rename a device the caller owns."""
    device = await owned_device(ctx, args)
    name = text_arg(args, "name", required=True, max_len=100)
    row = await ctx.db.rpc("rename_device", {"device_uuid": device["uuid"], "name": name})
    return {"ok": True, "device": {"uuid": device["uuid"], "old_name": device["name"], "name": row["name"]}}


async def vpn_on_device(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Ask a device to turn its VPN on."""
    device = await owned_device(ctx, args)
    row = await ctx.db.rpc("vpn_on_device", {"device_uuid": device["uuid"]})
    return _summary(device, vpn_state=(row or {}).get("vpn_state"))


async def vpn_off_device(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Ask a device to turn its VPN off."""
    device = await owned_device(ctx, args)
    row = await ctx.db.rpc("vpn_off_device", {"device_uuid": device["uuid"]})
    return _summary(device, vpn_state=(row or {}).get("vpn_state"))


def _connection_type(args: dict[str, Any]) -> str:
    kind = args.get("connection_type")
    if kind not in _CONNECTION_TYPES:
        raise ToolRefused(f"connection_type is one of {', '.join(_CONNECTION_TYPES)}")
    return str(kind)


async def set_device_connection_type(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Set how one device connects."""
    device = await owned_device(ctx, args)
    kind = _connection_type(args)
    row = await ctx.db.rpc(
        "set_device_connection_type", {"device_uuid": device["uuid"], "connection_type": kind}
    )
    return _summary(device, connection_type=row["connection_type"])


async def set_global_connection_type(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Set the default connection type every device starts from."""
    settings = await ctx.db.rpc("set_global_connection_type", {"connection_type": _connection_type(args)})
    return {"ok": True, "global_settings": settings}


async def upsert_service_group(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Create a service group, or update the one with `id`; `ai_agent` is accepted and ignored."""
    row = await ctx.db.rpc(
        "upsert_service_group",
        {
            "name": text_arg(args, "name", required=True, max_len=100),
            "domains": _strings(args, "domains", 500),
            "icon": text_arg(args, "icon", max_len=100),
            "id": _uuid_arg(args, "id") if args.get("id") is not None else None,
        },
    )
    note = (
        {"note": "ai_agent is ignored: link agents with set_service_group_agents"}
        if "ai_agent" in args
        else {}
    )
    return {"ok": True, "service_group": {k: row[k] for k in ("id", "name", "icon", "domains")}, **note}


async def delete_service_group(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Delete a service group."""
    group_id = _uuid_arg(args, "id")
    await ctx.db.rpc("delete_service_group", {"id": group_id})
    return {"ok": True, "deleted_service_group": group_id}


def agent_order(agents: object) -> list[str]:
    """The agent ids in the order the database stores them: the primary first (the first listed when none is
    flagged), then the others by `position`, then as listed. ToolRefused for more than one primary, a repeated
    or malformed id."""
    if not isinstance(agents, list) or len(agents) > MAX_AGENTS:
        raise ToolRefused(f"agents is the complete list of links (at most {MAX_AGENTS}); [] clears them")
    parsed: list[tuple[str, bool, int, int]] = []
    for index, agent in enumerate(agents):
        if (
            not isinstance(agent, dict)
            or not is_uuid(agent.get("agent_id"))
            or set(agent)
            - {
                "agent_id",
                "is_primary",
                "position",
            }
        ):
            raise ToolRefused("each agent is {agent_id: uuid, is_primary?: bool, position?: int}")
        position = agent.get("position", index)
        if not isinstance(position, int) or isinstance(position, bool):
            raise ToolRefused("position is a whole number")
        parsed.append((str(agent["agent_id"]).lower(), agent.get("is_primary") is True, position, index))
    ids = [agent_id for agent_id, *_ in parsed]
    if len(set(ids)) != len(ids):
        raise ToolRefused("an agent is listed twice; list each agent once")
    primaries = [entry for entry in parsed if entry[1]]
    if len(primaries) > 1:
        raise ToolRefused(
            f"{len(primaries)} agents are marked primary; a service group has exactly one primary agent. "
            "Mark one with is_primary: true and retry."
        )
    if not parsed:
        return []
    primary = primaries[0] if primaries else parsed[0]
    rest = sorted((entry for entry in parsed if entry is not primary), key=lambda entry: (entry[2], entry[3]))
    return [primary[0], *(entry[0] for entry in rest)]


async def set_service_group_agents(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Replace a group's linked agents (exactly one primary; [] clears); needs confirm: true."""
    group_id = _uuid_arg(args, "service_group_id")
    order = agent_order(args.get("agents"))
    require_confirm(
        args,
        f"replace every agent linked to the group with {len(order)} agent(s) (say which, the primary first)",
        final=False,
    )
    rows = await ctx.db.rpc("set_service_group_agents", {"service_group_id": group_id, "agent_ids": order})
    links = sorted(rows if isinstance(rows, list) else [], key=lambda row: row["position"])
    return {
        "ok": True,
        "service_group_id": group_id,
        "primary_agent_id": next((row["agent_id"] for row in links if row["is_primary"]), None),
        "agents": [
            {"agent_id": r["agent_id"], "is_primary": r["is_primary"], "position": r["position"]}
            for r in links
        ],
    }


async def upsert_tag(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Create a tag, or update the one with `id`."""
    row = await ctx.db.rpc(
        "upsert_tag",
        {
            "name": text_arg(args, "name", required=True, max_len=60),
            "color": text_arg(args, "color", max_len=7),
            "match_patterns": _strings(args, "match_patterns"),
            "id": _uuid_arg(args, "id") if args.get("id") is not None else None,
        },
    )
    return {"ok": True, "tag": {k: row[k] for k in ("id", "name", "color", "match_patterns")}}


async def delete_tag(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Delete a tag."""
    tag_id = _uuid_arg(args, "id")
    await ctx.db.rpc("delete_tag", {"id": tag_id})
    return {"ok": True, "deleted_tag": tag_id}


def _device_tool(
    name: str, description: str, handler: Any, emoji: str, extra: dict[str, Any] | None = None
) -> Tool:
    properties = {"device": DEVICE_ARG, **(extra or {})}
    return Tool(
        name=name,
        description=f"{description} Only on a device the caller owns (admins: any).",
        input_schema=schema(properties, ("device", *(extra or {}))),
        handler=handler,
        kind="write",
        section="devices",
        action="edit",
        label=lambda args: (
            f"{emoji} {name.replace('_', ' ').capitalize()}: {str(args.get('device', ''))[:60]}…"
        ),
    )


_NAME = {"type": "string", "minLength": 1, "maxLength": 100, "description": "The name."}
_STRINGS = {"type": "array", "items": {"type": "string", "maxLength": 253}, "maxItems": 100}

TOOLS: list[Tool] = [
    _device_tool(
        "set_live_activity_message",
        "Set the message shown on a device's Live Activity; an empty string clears it.",
        set_live_activity_message,
        "💬",
        {"message": {"type": ["string", "null"], "maxLength": 500, "description": "The message; '' clears."}},
    ),
    _device_tool("rename_device", "Rename a device.", rename_device, "✏️", {"name": _NAME}),
    _device_tool("vpn_on_device", "Ask a device to turn its VPN on.", vpn_on_device, "🟢"),
    _device_tool("vpn_off_device", "Ask a device to turn its VPN off.", vpn_off_device, "🔴"),
    _device_tool(
        "set_device_connection_type",
        "Set how one device connects (vpn or pac for phones; proxy, cdp for the others).",
        set_device_connection_type,
        "🔀",
        {"connection_type": {"type": "string", "enum": _CONNECTION_TYPES}},
    ),
    Tool(
        name="set_global_connection_type",
        description="Set the global default connection type every device starts from (vpn, pac, proxy, cdp).",
        input_schema=schema(
            {"connection_type": {"type": "string", "enum": _CONNECTION_TYPES}}, ("connection_type",)
        ),
        handler=set_global_connection_type,
        kind="write",
        section="global",
        action="edit",
        label=lambda args: f"🌐 Setting the global connection type to {args.get('connection_type')}…",
    ),
    Tool(
        name="upsert_service_group",
        description="Create a service group (no id) or update one (its id): name, domains, icon. ai_agent is "
        "accepted for compatibility and ignored; link agents with set_service_group_agents.",
        input_schema=schema(
            {
                "name": _NAME,
                "domains": {**_STRINGS, "description": "Every domain of the service (replaces the list)."},
                "icon": {"type": "string", "maxLength": 100, "description": "An emoji or icon name."},
                "id": {**_ID, "description": "The group to update; omit to create."},
                "ai_agent": {"description": "Legacy, ignored."},
            },
            ("name",),
        ),
        handler=upsert_service_group,
        kind="write",
        section="services",
        action="edit",
        label=lambda args: f"🧩 Saving service group {str(args.get('name', ''))[:60]}…",
    ),
    Tool(
        name="delete_service_group",
        description="Delete a service group by id (its agent links go with it).",
        input_schema=schema({"id": _ID}, ("id",)),
        handler=delete_service_group,
        kind="write",
        section="services",
        action="edit",
        label=lambda args: "🗑️ Deleting a service group…",
        destructive=True,
    ),
    Tool(
        name="set_service_group_agents",
        description="Replace ALL the BusyBro agents linked to a service group. agents is the complete "
        "desired set [{agent_id, is_primary?, position?}]: exactly one primary (the first is promoted when "
        "none is flagged), the rest ordered by position; [] clears every link. Requires confirm: true, after "
        "the user confirmed the new set.",
        input_schema=schema(
            {
                "service_group_id": _ID,
                "agents": {
                    "type": "array",
                    "maxItems": MAX_AGENTS,
                    "items": schema(
                        {
                            "agent_id": _ID,
                            "is_primary": {"type": "boolean"},
                            "position": {"type": "integer", "minimum": 0, "maximum": 1000},
                        },
                        ("agent_id",),
                    ),
                },
                "confirm": {"type": "boolean", "description": "true once the user confirmed the new set."},
            },
            ("service_group_id", "agents", "confirm"),
        ),
        handler=set_service_group_agents,
        kind="write",
        section="services",
        action="edit",
        label=lambda args: "🤖 Linking agents to a service group…",
        destructive=True,
    ),
    Tool(
        name="upsert_tag",
        description="Create a tag (no id) or update one (its id): name, color (#rrggbb), match patterns.",
        input_schema=schema(
            {
                "name": {**_NAME, "maxLength": 60},
                "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                "match_patterns": {**_STRINGS, "description": "Host or path patterns (replaces the list)."},
                "id": {**_ID, "description": "The tag to update; omit to create."},
            },
            ("name",),
        ),
        handler=upsert_tag,
        kind="write",
        section="tags",
        action="edit",
        label=lambda args: f"🏷️ Saving tag {str(args.get('name', ''))[:60]}…",
    ),
    Tool(
        name="delete_tag",
        description="Delete a tag by id (from list_tags); captured entries stay, only the label goes.",
        input_schema=schema({"id": _ID}, ("id",)),
        handler=delete_tag,
        kind="write",
        section="tags",
        action="edit",
        label=lambda args: "🗑️ Deleting a tag…",
        destructive=True,
    ),
]
