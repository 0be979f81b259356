"""BusyBro's read tools: SELECT-only looks at live state, each capped (rows, string length) and returning the
ids the model deep-links with (/devices?uuid=, /services?id=, /tags?id=, /users?id=, /breakpoints?id=).

They run through `ctx.db` under the caller's token on the web, so Row Level Security decides the rows; the two
view-gated ones (list_users: users:view, list_breakpoints: devices:view) are also gated by their capability.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from busymate.functions.busybro.core import Tool, ToolContext, ToolRefused
from busymate.functions.busybro.tools.common import (
    DEVICE_ARG,
    LIMIT_ARG,
    MAX_ROWS,
    clip,
    clip_row,
    device_names,
    limit_arg,
    resolve_device,
    schema,
    text_arg,
)
from busymate.functions.busybro.tools.paging import CURSOR_SCHEMA, Keyset
from busymate.functions.busybro.tools.redact import redact_json, redact_text

# Each list tool pages by a keyset (paging.py): its sort column and a unique key, in one direction.
_DEVICES = Keyset("last_seen_at", "uuid", nullable=True)
_ENTRIES = Keyset("captured_at")
_BY_NAME = Keyset("name", descending=False, kind="text")
_USERS = Keyset("email", descending=False, nullable=True, kind="text")
_BREAKPOINTS = Keyset("paused_at")


async def list_devices(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """The device roster, newest seen first."""
    limit = limit_arg(args, default=MAX_ROWS)
    params = {
        "select": "uuid,name,model,os,source,connection_type,last_seen_at,country,app_build,app_source,"
        "paired,workspace_id,owner_user_id",
    }
    if args.get("mine") is True and ctx.identity.user_id:
        params["owner_user_id"] = f"eq.{ctx.identity.user_id}"
    rows = await ctx.db.select("devices", _DEVICES.params(params, args.get("cursor"), limit))
    shown = [clip({**row, "yours": row.get("owner_user_id") == ctx.identity.user_id}) for row in rows[:limit]]
    devices, cursor = _DEVICES.fit(rows, limit, shown)
    return {"next_cursor": cursor, "devices": devices, "count": len(devices), "link": "/devices?uuid=<uuid>"}


async def device_status(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """One device's live status."""
    device = await resolve_device(ctx, args.get("device"))
    rows = await ctx.db.select(
        "device_status",
        {
            "select": "online,vpn_state,heartbeat_at,ip_country,live_activity_message",
            "device_uuid": f"eq.{device['uuid']}",
        },
    )
    status = rows[0] if rows else {"online": False, "vpn_state": "unknown", "heartbeat_at": None}
    return clip_row({"uuid": device["uuid"], "name": device["name"], **status, "reported": bool(rows)})


async def count_entries(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """How many entries were captured in a window."""
    minutes = args.get("since_minutes", 60)
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 43_200:
        raise ToolRefused("since_minutes is a whole number from 1 to 43200 (30 days)")
    since = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()
    device = await resolve_device(ctx, args["device"]) if args.get("device") is not None else None
    host = text_arg(args, "host", max_len=253)
    count = await ctx.db.rpc(
        "count_entries", {"since": since, "device": device and device["uuid"], "host": host}
    )
    return {
        "count": count,
        "since": since,
        "device": device and {"uuid": device["uuid"], "name": device["name"]},
        "host": host,
    }


async def recent_entries(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """The newest captured requests (metadata only), paged by the recent_entries RPC's (before_at, before_id)
    bound: one ordered lookup per readable workspace, row-level security deciding the rows."""
    limit = limit_arg(args)
    before_at, before_id = _ENTRIES.after(args["cursor"]) if args.get("cursor") is not None else (None, None)
    device = await resolve_device(ctx, args["device"]) if args.get("device") is not None else None
    host = text_arg(args, "host", max_len=253)
    rows = await ctx.db.rpc(
        "recent_entries",
        {
            "limit": limit + 1,
            "device": device and device["uuid"],
            "host": host,
            "before_at": before_at,
            "before_id": before_id,
        },
    )
    rows = rows if isinstance(rows, list) else []
    names = await device_names(ctx, {str(row.get("device_uuid")) for row in rows[:limit]})
    entries = [
        {
            "id": row.get("id"),
            "time": row.get("captured_at"),
            "device_uuid": row.get("device_uuid"),
            "device": names.get(str(row.get("device_uuid"))),
            "method": row.get("method"),
            "status": row.get("status"),
            "host": row.get("host"),
            "path": redact_text(str(row.get("path") or "")),
            "duration_ms": row.get("duration_ms"),
            "content_type": row.get("response_content_type"),
            "error": redact_text(str(row["error"])) if row.get("error") else None,
        }
        for row in rows[:limit]
    ]
    shown, cursor = _ENTRIES.fit(rows, limit, clip(entries))
    return {"next_cursor": cursor, "entries": shown, "count": len(shown)}


async def effective_settings(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """A device's merged settings, or the global defaults."""
    if args.get("device") is None:
        rows = await ctx.db.select("settings_global", {"select": "settings,updated_at"})
        settings = redact_json(rows[0]["settings"] if rows else {})
        return clip_row({"scope": "global", "settings": settings})
    device = await resolve_device(ctx, args["device"])
    merged = redact_json(await ctx.db.rpc("effective_settings", {"device_uuid": device["uuid"]}))
    return clip_row({"scope": "device", "uuid": device["uuid"], "name": device["name"], "settings": merged})


async def list_workspaces(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """The workspaces the caller can see."""
    limit = limit_arg(args, MAX_ROWS)
    params = _BY_NAME.params({"select": "id,slug,name,retention_days"}, args.get("cursor"), limit)
    rows = await ctx.db.select("workspaces", params)
    shown, cursor = _BY_NAME.fit(rows, limit, clip(rows[:limit]))
    return {"next_cursor": cursor, "workspaces": shown, "count": len(shown)}


async def list_tags(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Tags and their match patterns."""
    limit = limit_arg(args, MAX_ROWS)
    params = _BY_NAME.params({"select": "id,name,color,match_patterns"}, args.get("cursor"), limit)
    rows = await ctx.db.select("tags", params)
    tags = [clip({**row, "match_patterns": (row.get("match_patterns") or [])[:20]}) for row in rows[:limit]]
    shown, cursor = _BY_NAME.fit(rows, limit, tags)
    return {"next_cursor": cursor, "tags": shown, "count": len(shown), "link": "/tags?id=<id>"}


async def list_service_groups(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Service groups with their domains and their linked agents (primary first, then by position)."""
    limit = limit_arg(args, MAX_ROWS)
    rows = await ctx.db.select(
        "service_groups", _BY_NAME.params({"select": "id,name,icon,domains"}, args.get("cursor"), limit)
    )
    groups = rows[:limit]
    ids = [str(group["id"]) for group in groups]
    links = (
        await ctx.db.select(
            "service_group_agents",
            {
                "select": "service_group_id,agent_id,is_primary,position",
                "service_group_id": f"in.({','.join(ids)})",
            },
        )
        if ids
        else []
    )
    agent_ids = sorted({str(link["agent_id"]) for link in links})
    agents = (
        await ctx.db.select(
            "busybro_agents",
            {"select": "id,name,emoji,instructions", "id": f"in.({','.join(agent_ids)})"},
        )
        if agent_ids
        else []
    )
    by_id = {str(agent["id"]): agent for agent in agents}
    out = []
    for group in groups:
        mine = sorted(
            (link for link in links if link["service_group_id"] == group["id"]),
            key=lambda link: (not link["is_primary"], link["position"]),
        )
        linked = [
            {**by_id.get(str(link["agent_id"]), {"id": link["agent_id"]}), "is_primary": link["is_primary"]}
            for link in mine
        ]
        domains = group.get("domains") or []
        out.append(
            {
                "id": group["id"],
                "name": group["name"],
                "icon": group.get("icon"),
                "domain_count": len(domains),
                "domains_sample": domains[:10],
                "primary_agent": clip(linked[0], 1500) if linked and linked[0]["is_primary"] else None,
                "agents": clip(linked),
            }
        )
    shown, cursor = _BY_NAME.fit(rows, limit, clip(out, 1500))
    return {"next_cursor": cursor, "service_groups": shown, "count": len(shown), "link": "/services?id=<id>"}


async def list_users(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Dashboard users and their roles (users:view)."""
    limit = limit_arg(args, MAX_ROWS)
    params = _USERS.params({"select": "id,email,display_name,role"}, args.get("cursor"), limit)
    rows = await ctx.db.select("profiles", params)
    shown, cursor = _USERS.fit(rows, limit, clip(rows[:limit]))
    return {"next_cursor": cursor, "users": shown, "count": len(shown), "link": "/users?id=<id>"}


async def list_breakpoints(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Recent breakpoint events: which flow paused where, and how it ended (devices:view)."""
    limit = limit_arg(args)
    params = {"select": "id,breakpoint_id,phase,device_uuid,paused_at,active,outcome,resolved_at"}
    if args.get("active_only") is True:
        params["active"] = "eq.true"
    rows = await ctx.db.select("breakpoint_events", _BREAKPOINTS.params(params, args.get("cursor"), limit))
    names = await device_names(ctx, {str(row.get("device_uuid")) for row in rows[:limit]})
    events = [
        clip(
            {
                **{key: value for key, value in row.items() if key != "phase"},
                "kind": row.get("phase"),
                "device": names.get(str(row.get("device_uuid"))),
            }
        )
        for row in rows[:limit]
    ]
    shown, cursor = _BREAKPOINTS.fit(rows, limit, events)
    return {"next_cursor": cursor, "breakpoints": shown, "count": len(shown), "link": "/breakpoints?id=<id>"}


def _label(text: str, key: str | None = None) -> Any:
    def label(args: dict[str, Any]) -> str:
        value = args.get(key) if key else None
        return f"{text} {str(value)[:60]}…" if isinstance(value, str) and value else f"{text}…"

    return label


_DEVICE_OPT = {"device": {**DEVICE_ARG, "description": "Only this device: its uuid or exact name."}}
_PAGE = {"limit": LIMIT_ARG, "cursor": CURSOR_SCHEMA}
_MORE = " Returns next_cursor when there is more: pass it back as cursor for the next page."
_HOST_OPT = {
    "host": {"type": "string", "minLength": 3, "maxLength": 253, "description": "One exact hostname."}
}

TOOLS: list[Tool] = [
    Tool(
        name="list_devices",
        description="The device roster: uuid, name, model, OS, source, connection type, last seen, country, "
        "app build and source, whether it is yours. Newest seen first. Link a device as "
        "/devices?uuid=<uuid>." + _MORE,
        input_schema=schema(
            {
                **_PAGE,
                "mine": {"type": "boolean", "description": "Only the caller's own devices."},
            }
        ),
        handler=list_devices,
        label=_label("📱 Listing devices"),
    ),
    Tool(
        name="device_status",
        description="One device's live status: online or offline, VPN state, last heartbeat, IP country and "
        "its Live Activity message.",
        input_schema=schema({"device": DEVICE_ARG}, ("device",)),
        handler=device_status,
        label=_label("📡 Checking", "device"),
    ),
    Tool(
        name="count_entries",
        description="How many requests were captured in the last N minutes (default 60), optionally for one "
        "device and/or one exact host.",
        input_schema=schema(
            {
                "since_minutes": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 43_200,
                    "description": "Window.",
                },
                **_DEVICE_OPT,
                **_HOST_OPT,
            }
        ),
        handler=count_entries,
        label=_label("🔢 Counting requests"),
    ),
    Tool(
        name="recent_entries",
        description="The newest captured requests (metadata only): id, time, device, method, status, host, "
        "path. Optionally for one device and/or exact host. Use inspect_requests for headers and bodies."
        + _MORE,
        input_schema=schema({**_PAGE, **_DEVICE_OPT, **_HOST_OPT}),
        handler=recent_entries,
        label=_label("🕒 Reading recent traffic"),
    ),
    Tool(
        name="effective_settings",
        description="A device's effective settings (its overrides over the global ones), or the global "
        "defaults when no device is given.",
        input_schema=schema(_DEVICE_OPT),
        handler=effective_settings,
        label=_label("⚙️ Reading settings"),
    ),
    Tool(
        name="list_workspaces",
        description="Workspaces the caller can see: id, slug, name, retention in days." + _MORE,
        input_schema=schema(_PAGE),
        handler=list_workspaces,
        label=_label("🗂️ Listing workspaces"),
    ),
    Tool(
        name="list_tags",
        description="Tags: id, name, color, match patterns. Link a tag as /tags?id=<id>." + _MORE,
        input_schema=schema(_PAGE),
        handler=list_tags,
        label=_label("🏷️ Listing tags"),
    ),
    Tool(
        name="list_service_groups",
        description="Service groups: id, icon, domain count and sample, and the linked BusyBro agents "
        "(primary_agent, whose instructions are the lens for that service, then agents[] primary first and "
        "by position). Link a group as /services?id=<id>." + _MORE,
        input_schema=schema(_PAGE),
        handler=list_service_groups,
        label=_label("🧩 Listing service groups"),
    ),
    Tool(
        name="list_users",
        description="Dashboard users: id, email, display name, role. Link a user as /users?id=<id>." + _MORE,
        input_schema=schema(_PAGE),
        handler=list_users,
        section="users",
        label=_label("👥 Listing users"),
    ),
    Tool(
        name="list_breakpoints",
        description="Recent breakpoint events: id, kind (request or response), device, paused at, active, "
        "outcome. Link one as /breakpoints?id=<id>." + _MORE,
        input_schema=schema(
            {
                **_PAGE,
                "active_only": {"type": "boolean", "description": "Only flows still paused."},
            }
        ),
        handler=list_breakpoints,
        section="devices",
        label=_label("⏸️ Listing breakpoints"),
    ),
]
