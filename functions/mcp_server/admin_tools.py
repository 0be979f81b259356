"""The MCP server's administrative tools (issue 20): what BusyBro deliberately refuses (unpair and delete
devices, wipe entries, user roles, workspaces and tabs, settings JSON, breakpoint rules, resend), offered only
over MCP, to a caller whose role could do it in the dashboard.

Each tool is one RPC (or one PostgREST write under RLS) run with the caller's token, so the database decides;
the gate here mirrors the database's own check, so a tool is listed only when it could work: `AdminTool` for
the RPCs that `require_admin` (the role's `grants_all`), a section/action for the capability-gated ones
(`wipe_entries`: entries:edit; breakpoint rules and `resend_entry`: breakpoints:edit). The destructive ones
(unpair, delete, wipe, remove, role changes) refuse to run without `confirm: true` and say what they would do.
Results are small: the changed row's id and key fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from busymate.api_core import ApiRefused
from busymate.functions.busybro.core import Identity, Tool, ToolContext, ToolRefused
from busymate.functions.busybro.tools.common import (
    DEVICE_ARG,
    LIMIT_ARG,
    clip,
    clip_row,
    is_uuid,
    limit_arg,
    require_confirm,
    resolve_device,
    schema,
    text_arg,
)
from busymate.functions.busybro.tools.paging import CURSOR_SCHEMA, Keyset
from busymate.functions.busybro.tools.redact import redact_text

ID = {"type": "string", "pattern": "^[0-9a-fA-F-]{36}$", "description": "The row's id (uuid)."}
CONFIRM = {
    "type": "boolean",
    "description": "true once the user has confirmed this exact change; without it the tool only says what "
    "it would do.",
}
WORKSPACE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "description": "The workspace: its uuid or slug (list_workspaces). May be omitted when you see only one.",
}
USER = {
    "type": "string",
    "minLength": 3,
    "maxLength": 320,
    "description": "The user: their uuid or exact email (list_users).",
}
TIME = {
    "type": "string",
    "maxLength": 40,
    "description": "An ISO 8601 time with a zone, e.g. 2026-12-03T10:00:00Z.",
}
SETTINGS = {
    "type": "object",
    "description": "Keys to set (merged over the current object; a key set to null is removed), or the whole "
    "object with replace: true.",
}
REPLACE = {"type": "boolean", "description": "Replace the whole object instead of merging (default false)."}
_PHASES = ["request", "response"]
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class AdminTool(Tool):
    """A tool whose RPC runs `private.require_admin`: offered (and run) only for a role that grants_all."""

    def allowed(self, identity: Identity) -> bool:
        """Only an admin (grants_all) who is a known user."""
        return identity.may_write and identity.grants_all


def _uuid(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not is_uuid(value):
        raise ToolRefused(f"{name} is required: a uuid (from the matching list tool)")
    return str(value).lower()


def _bool(args: dict[str, Any], name: str) -> bool | None:
    value = args.get(name)
    if value is not None and not isinstance(value, bool):
        raise ToolRefused(f"{name} is true or false")
    return value


def _int(args: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ToolRefused(f"{name} is a whole number from {low} to {high}")
    return value


def _time(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ToolRefused(f"{name} is an ISO 8601 time with a zone, e.g. 2026-12-03T10:00:00Z")
    return parsed.isoformat()


def _object(args: dict[str, Any], name: str) -> dict[str, Any]:
    value = args.get(name)
    if not isinstance(value, dict):
        raise ToolRefused(f"{name} is required: a JSON object")
    return value


async def _workspace(ctx: ToolContext, ref: object) -> dict[str, Any]:
    """The workspace `ref` names (uuid or slug), as the caller sees it; with none, the only one they see."""
    columns = "id,slug,name,retention_days"
    if ref is None:
        rows = await ctx.db.select("workspaces", {"select": columns, "order": "slug.asc", "limit": "21"})
        if len(rows) == 1:
            return rows[0]
        slugs = ", ".join(str(row["slug"]) for row in rows[:20]) or "none"
        raise ToolRefused(f"name the workspace (uuid or slug); you see: {slugs}")
    if not isinstance(ref, str) or not ref.strip():
        raise ToolRefused("workspace is a workspace uuid or slug (list_workspaces)")
    key = "id" if is_uuid(ref.strip()) else "slug"
    rows = await ctx.db.select("workspaces", {"select": columns, key: f"eq.{ref.strip()}"})
    if not rows:
        raise ToolRefused(f"no workspace {ref.strip()!r} that you can see; call list_workspaces")
    return rows[0]


async def _user(ctx: ToolContext, ref: object) -> dict[str, Any]:
    """The user `ref` names (uuid or exact email)."""
    if not isinstance(ref, str) or not ref.strip():
        raise ToolRefused("user is a user's uuid or exact email (list_users)")
    ref = ref.strip()
    key = "id" if is_uuid(ref) else "email"
    rows = await ctx.db.select("profiles", {"select": "id,email,display_name,role", key: f"eq.{ref}"})
    if len(rows) != 1:
        raise ToolRefused(f"no user {ref!r} that you can see; call list_users and pass the id")
    return rows[0]


def _device(row: dict[str, Any]) -> dict[str, Any]:
    return {"uuid": row["uuid"], "name": row["name"], "workspace_id": row.get("workspace_id")}


# Devices.


async def unpair_device(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Void a device's credential now (it must be paired again to capture)."""
    device = await resolve_device(ctx, args.get("device"))
    require_confirm(
        args,
        f"unpair device {device['name']} ({device['uuid']}): its credential is voided at once and it "
        "stops capturing until it is paired again",
    )
    row = await ctx.db.rpc("unpair_device", {"device_uuid": device["uuid"]})
    return {"ok": True, "unpaired": {**_device(device), "paired": (row or {}).get("paired")}}


async def delete_device(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Remove a device and everything hanging off it (status, overrides, rules for it)."""
    device = await resolve_device(ctx, args.get("device"))
    require_confirm(
        args,
        f"delete device {device['name']} ({device['uuid']}) with its status, settings overrides and "
        "breakpoint rules (captured entries stay until retention)",
    )
    await ctx.db.rpc("delete_device", {"device_uuid": device["uuid"]})
    return {"ok": True, "deleted_device": _device(device)}


# Entries.


async def _count(ctx: ToolContext, params: dict[str, str]) -> int | None:
    """How many entries the caller sees under `params` (PostgREST's exact count), None when unknown."""
    answer = await ctx.db.send(
        "GET",
        "/rest/v1/entries",
        params={**params, "select": "id", "limit": "0"},
        extra={"prefer": "count=exact"},
    )
    total = answer.headers.get("content-range", "").rpartition("/")[2]
    return int(total) if answer.status_code < 400 and total.isdigit() else None


async def wipe_entries(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Delete one workspace's captured entries: a host, a time range, or (with everything) all of them."""
    workspace = await _workspace(ctx, args.get("workspace"))
    host = text_arg(args, "host", max_len=253)
    since, until = _time(args, "since"), _time(args, "until")
    everything = _bool(args, "everything") is True
    if host is None and since is None and until is None and not everything:
        raise ToolRefused(
            "name a host, a time range (since, until) or both; to wipe every entry of the workspace pass "
            "everything: true"
        )
    if since and until and datetime.fromisoformat(since) >= datetime.fromisoformat(until):
        raise ToolRefused("since must be before until")
    scope = {"workspace": {"id": workspace["id"], "slug": workspace["slug"]}, "host": host}
    scope |= {"since": since, "until": until}
    if args.get("confirm") is not True:
        params = {"workspace_id": f"eq.{workspace['id']}"}
        if host:
            params["host"] = f"eq.{host}"
        window = [f"captured_at.gte.{since}"] if since else []
        window += [f"captured_at.lt.{until}"] if until else []
        if window:
            params["and"] = f"({','.join(window)})"
        matching = await _count(ctx, params)
        what = "every entry" if host is None and since is None and until is None else "the entries"
        described = ", ".join(
            f"{key} {value}" for key, value in (("host", host), ("since", since), ("until", until)) if value
        )
        require_confirm(
            args,
            f"delete {what} of workspace {workspace['slug']}"
            + (f" matching {described}" if described else "")
            + (f": {matching} {'entry' if matching == 1 else 'entries'} now" if matching is not None else ""),
        )
    deleted = await ctx.db.rpc(
        "wipe_entries",
        {
            "workspace_id": workspace["id"],
            "host": host,
            "since": since,
            "until": until,
            "everything": everything,
        },
    )
    return {"ok": True, "deleted": deleted, **scope}


# Users.


async def set_user_role(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Give a user another role (the last admin cannot be demoted)."""
    user = await _user(ctx, args.get("user"))
    role = text_arg(args, "role", required=True, max_len=63)
    require_confirm(args, f"change the role of {user['email'] or user['id']} from {user['role']} to {role}")
    row = await ctx.db.rpc("set_user_role", {"user_id": user["id"], "role": role})
    return {
        "ok": True,
        "user": {"id": row["id"], "email": row["email"], "role": row["role"]},
        "previous_role": user["role"],
    }


# Workspaces and their members.


def _ws(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row.get(key) for key in ("id", "slug", "name", "retention_days")}


async def create_workspace(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Create a workspace."""
    row = await ctx.db.rpc(
        "create_workspace",
        {
            "slug": text_arg(args, "slug", required=True, max_len=63),
            "name": text_arg(args, "name", required=True, max_len=200),
            "retention_days": _int(args, "retention_days", 1, 3650) or 7,
        },
    )
    return {"ok": True, "workspace": _ws(row)}


async def update_workspace(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Rename a workspace or change its retention."""
    workspace = await _workspace(ctx, args.get("workspace"))
    name = text_arg(args, "name", max_len=200)
    retention = _int(args, "retention_days", 1, 3650)
    if name is None and retention is None:
        raise ToolRefused("give name, retention_days or both")
    row = await ctx.db.rpc(
        "update_workspace", {"id": workspace["id"], "name": name, "retention_days": retention}
    )
    return {"ok": True, "workspace": _ws(row), "previous": _ws(workspace)}


async def delete_workspace(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Delete a workspace with its devices, tabs, rules and captured traffic."""
    workspace = await _workspace(ctx, args.get("workspace"))
    require_confirm(
        args,
        f"delete workspace {workspace['slug']} ({workspace['id']}) with its devices, members, tabs, "
        "breakpoint rules and every captured entry",
    )
    await ctx.db.rpc("delete_workspace", {"id": workspace["id"]})
    return {"ok": True, "deleted_workspace": _ws(workspace)}


async def add_workspace_member(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Add a user to a workspace (again is fine)."""
    workspace = await _workspace(ctx, args.get("workspace"))
    user = await _user(ctx, args.get("user"))
    await ctx.db.rpc("add_workspace_member", {"workspace_id": workspace["id"], "user_id": user["id"]})
    return {
        "ok": True,
        "member": {
            "workspace_id": workspace["id"],
            "slug": workspace["slug"],
            "user_id": user["id"],
            "email": user["email"],
        },
    }


async def remove_workspace_member(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Remove a user from a workspace."""
    workspace = await _workspace(ctx, args.get("workspace"))
    user = await _user(ctx, args.get("user"))
    require_confirm(
        args,
        f"remove {user['email'] or user['id']} from workspace {workspace['slug']}: they lose its "
        "devices, traffic and tabs at once",
    )
    await ctx.db.rpc("remove_workspace_member", {"workspace_id": workspace["id"], "user_id": user["id"]})
    return {
        "ok": True,
        "removed": {
            "workspace_id": workspace["id"],
            "slug": workspace["slug"],
            "user_id": user["id"],
            "email": user["email"],
        },
    }


# Tabs.

_TABS = Keyset("created_at")
_TAB_COLUMNS = "id,workspace_id,user_id,name,filter,position,created_at"


def _tab(row: dict[str, Any]) -> dict[str, Any]:
    return clip_row(
        {key: row.get(key) for key in ("id", "workspace_id", "user_id", "name", "filter", "position")}
    )


async def list_workspace_tabs(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Saved filter tabs the caller sees, newest first, paged."""
    params = {"select": _TAB_COLUMNS}
    if args.get("workspace") is not None:
        params["workspace_id"] = f"eq.{(await _workspace(ctx, args['workspace']))['id']}"
    limit = limit_arg(args)
    rows, cursor = _TABS.page(
        await ctx.db.select("workspace_tabs", _TABS.params(params, args.get("cursor"), limit)), limit
    )
    return {"tabs": [_tab(row) for row in rows], "count": len(rows), "next_cursor": cursor}


def _filter(args: dict[str, Any]) -> dict[str, Any] | None:
    return _object(args, "filter") if args.get("filter") is not None else None


async def create_workspace_tab(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Create a tab: shared with the workspace, or one user's."""
    workspace = await _workspace(ctx, args.get("workspace"))
    owner = (await _user(ctx, args["user"]))["id"] if args.get("user") is not None else None
    row = await ctx.db.rpc(
        "create_workspace_tab",
        {
            "workspace_id": workspace["id"],
            "name": text_arg(args, "name", required=True, max_len=100),
            "filter": _filter(args) or {},
            "user_id": owner,
            "position": _int(args, "position", 0, 10_000) or 0,
        },
    )
    return {"ok": True, "tab": _tab(row)}


async def update_workspace_tab(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Rename a tab, change its filter or position."""
    changes = {
        "name": text_arg(args, "name", max_len=100),
        "filter": _filter(args),
        "position": _int(args, "position", 0, 10_000),
    }
    if all(value is None for value in changes.values()):
        raise ToolRefused("give name, filter, position or several")
    # Only the given keys: PostgREST passes a JSON null to a jsonb parameter as the JSON value null.
    given = {key: value for key, value in changes.items() if value is not None}
    row = await ctx.db.rpc("update_workspace_tab", {"id": _uuid(args, "id"), **given})
    return {"ok": True, "tab": _tab(row)}


async def delete_workspace_tab(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Delete a tab."""
    tab_id = _uuid(args, "id")
    rows = await ctx.db.select("workspace_tabs", {"select": _TAB_COLUMNS, "id": f"eq.{tab_id}"})
    if not rows:
        raise ToolRefused(f"no tab {tab_id} that you can see; call list_workspace_tabs")
    require_confirm(args, f"delete the tab {rows[0]['name']!r} ({tab_id})")
    await ctx.db.rpc("delete_workspace_tab", {"id": tab_id})
    return {"ok": True, "deleted_tab": _tab(rows[0])}


# Settings JSON.


def _merged(current: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """`settings` over `current` (null removes a key), or `settings` alone with replace: true."""
    given = _object(args, "settings")
    if _bool(args, "replace") is True:
        return given
    out = {**current, **given}
    return {key: value for key, value in out.items() if value is not None}


def _keys(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "set": sorted(key for key in after if before.get(key) != after[key]),
        "removed": sorted(key for key in before if key not in after),
    }


async def set_global_settings(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Change the global settings JSON every device starts from."""
    rows = await ctx.db.select("settings_global", {"select": "settings"})
    current = rows[0]["settings"] if rows and isinstance(rows[0].get("settings"), dict) else {}
    settings = _merged(current, args)
    saved = await ctx.db.rpc("set_global_settings", {"settings": settings})
    return {"ok": True, "scope": "global", **_keys(current, saved if isinstance(saved, dict) else settings)}


async def set_device_settings(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Change one device's settings overrides."""
    device = await resolve_device(ctx, args.get("device"))
    rows = await ctx.db.select(
        "settings_device", {"select": "overrides", "device_uuid": f"eq.{device['uuid']}"}
    )
    current = rows[0]["overrides"] if rows and isinstance(rows[0].get("overrides"), dict) else {}
    row = await ctx.db.rpc(
        "set_device_settings", {"device_uuid": device["uuid"], "overrides": _merged(current, args)}
    )
    return {"ok": True, "scope": "device", "device": _device(device), **_keys(current, row["overrides"])}


# Breakpoint rules (public.breakpoints through PostgREST; RLS: breakpoints:edit in the rule's workspace).

_RULES = Keyset("created_at")
_RULE_COLUMNS = "id,workspace_id,device_uuid,phase,method,host_pattern,path_pattern,enabled,created_at"
_RETURN = {"prefer": "return=representation"}


def _rule(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "workspace_id", "device_uuid", "phase", "method", "host_pattern", "path_pattern", "enabled")
    return clip_row({key: row.get(key) for key in keys})


async def list_breakpoint_rules(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Breakpoint rules the caller sees, newest first, paged."""
    params = {"select": _RULE_COLUMNS}
    if args.get("workspace") is not None:
        params["workspace_id"] = f"eq.{(await _workspace(ctx, args['workspace']))['id']}"
    limit = limit_arg(args)
    rows, cursor = _RULES.page(
        await ctx.db.select("breakpoints", _RULES.params(params, args.get("cursor"), limit)), limit
    )
    return {"rules": [_rule(row) for row in rows], "count": len(rows), "next_cursor": cursor}


def _method(args: dict[str, Any]) -> str | None:
    value = text_arg(args, "method", max_len=32)
    if value is None:
        return None
    if not value.isalpha():
        raise ToolRefused("method is an HTTP method such as GET or POST")
    return value.upper()


def _phase(args: dict[str, Any]) -> str | None:
    value = args.get("phase")
    if value is not None and value not in _PHASES:
        raise ToolRefused("phase is request or response")
    return value


async def _rule_device(ctx: ToolContext, ref: object, workspace_id: str) -> str | None:
    if ref is None:
        return None
    device = await resolve_device(ctx, ref)
    if device.get("workspace_id") != workspace_id:
        raise ToolRefused(f"device {device['name']} is in another workspace than the rule")
    return str(device["uuid"])


async def create_breakpoint_rule(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Create a rule that pauses matching flows."""
    workspace = await _workspace(ctx, args.get("workspace"))
    values: dict[str, Any] = {
        "workspace_id": workspace["id"],
        "device_uuid": await _rule_device(ctx, args.get("device"), workspace["id"]),
        "phase": _phase(args) or "request",
        "method": _method(args),
        "host_pattern": text_arg(args, "host_pattern", max_len=253) or "*",
        "path_pattern": text_arg(args, "path_pattern", max_len=2048) or "*",
        "enabled": _bool(args, "enabled") is not False,
    }
    rows = await ctx.db.request("POST", "/rest/v1/breakpoints", json=values, extra=_RETURN)
    return {"ok": True, "rule": _rule(rows[0])}


async def _visible_rule(ctx: ToolContext, rule_id: str) -> dict[str, Any]:
    rows = await ctx.db.select("breakpoints", {"select": _RULE_COLUMNS, "id": f"eq.{rule_id}"})
    if not rows:
        raise ToolRefused(f"no breakpoint rule {rule_id} that you can see; call list_breakpoint_rules")
    return rows[0]


def _changed(rows: object, rule_id: str) -> dict[str, Any]:
    if not isinstance(rows, list) or not rows:
        raise ToolRefused(f"you may not change breakpoint rule {rule_id} (breakpoints:edit in its workspace)")
    row: dict[str, Any] = rows[0]
    return row


async def update_breakpoint_rule(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Change a rule: its patterns, phase, method, device or whether it is enabled."""
    rule = await _visible_rule(ctx, _uuid(args, "id"))
    changes: dict[str, Any] = {
        "phase": _phase(args),
        "method": _method(args),
        "host_pattern": text_arg(args, "host_pattern", max_len=253),
        "path_pattern": text_arg(args, "path_pattern", max_len=2048),
        "enabled": _bool(args, "enabled"),
    }
    changes = {key: value for key, value in changes.items() if value is not None}
    if args.get("device") is not None:
        changes["device_uuid"] = await _rule_device(ctx, args["device"], rule["workspace_id"])
    if args.get("any_device") is True:
        changes["device_uuid"] = None
    if not changes:
        raise ToolRefused("give at least one of phase, method, host_pattern, path_pattern, enabled, device")
    rows = await ctx.db.request(
        "PATCH", "/rest/v1/breakpoints", params={"id": f"eq.{rule['id']}"}, json=changes, extra=_RETURN
    )
    return {"ok": True, "rule": _rule(_changed(rows, rule["id"]))}


async def delete_breakpoint_rule(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Delete a rule (flows it paused keep their history)."""
    rule = await _visible_rule(ctx, _uuid(args, "id"))
    require_confirm(
        args,
        f"delete the breakpoint rule {rule['id']} ({rule['phase']} {rule.get('method') or 'any method'} "
        f"{rule['host_pattern']}{rule['path_pattern']})",
    )
    rows = await ctx.db.request(
        "DELETE", "/rest/v1/breakpoints", params={"id": f"eq.{rule['id']}"}, extra=_RETURN
    )
    return {"ok": True, "deleted_rule": _rule(_changed(rows, rule["id"]))}


# Resend.


async def resend_entry(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Ask the capturing proxy to replay a stored request."""
    entry_id = _uuid(args, "entry_id")
    rows = await ctx.db.select(
        "entries", {"select": "id,method,host,path", "id": f"eq.{entry_id}", "limit": "1"}
    )
    if not rows:
        raise ToolRefused(
            f"no entry {entry_id} that you can see; find one with recent_entries or inspect_requests"
        )
    entry = rows[0]
    if str(entry["method"]).upper() not in _SAFE_METHODS:
        path = redact_text(str(clip(entry["path"], 200)))
        require_confirm(
            args,
            f"send {entry['method']} https://{entry['host']}{path} again to the real "
            "server (it may repeat its effect: a payment, an order, a message)",
        )
    try:
        sent = await ctx.db.rpc("resend_entry", {"entry_id": entry_id})
    except ApiRefused as exc:
        if exc.code == "PT409":
            raise ToolRefused(f"not resent: {exc.message}") from exc
        raise
    keys = ("request_id", "entry_id", "device_uuid", "workspace_id")
    return {
        "ok": True,
        "resend": {key: sent.get(key) for key in keys},
        "method": entry["method"],
        "host": entry["host"],
    }


def _admin(
    name: str,
    description: str,
    handler: Any,
    properties: dict[str, Any],
    required: tuple[str, ...],
    label: str,
    *,
    destructive: bool = False,
    section: str = "workspaces",
) -> Tool:
    """A write whose RPC needs an admin: `section` is the dashboard area it belongs to (its edit)."""
    return AdminTool(
        name=name,
        description=f"{description} Admins only.",
        input_schema=schema(properties, required),
        handler=handler,
        kind="write",
        section=section,
        action="edit",
        label=lambda args: label,
        destructive=destructive,
    )


def _gated(
    name: str,
    description: str,
    handler: Any,
    properties: dict[str, Any],
    required: tuple[str, ...],
    label: str,
    section: str,
    kind: Literal["read", "write"] = "write",
    *,
    destructive: bool = False,
) -> Tool:
    """A tool gated by one capability (`section`: edit for writes, view for reads), as its RPC or policy
    is."""
    return Tool(
        name=name,
        description=description,
        input_schema=schema(properties, required),
        handler=handler,
        kind=kind,
        section=section,
        action="edit" if kind == "write" else "view",
        label=lambda args: label,
        destructive=destructive,
    )


_NAME = {"type": "string", "minLength": 1, "maxLength": 100}
_RETENTION = {"type": "integer", "minimum": 1, "maximum": 3650, "description": "Days entries are kept."}
_POSITION = {"type": "integer", "minimum": 0, "maximum": 10_000, "description": "Order among the tabs."}
_FILTER = {"type": "object", "description": "The tab's saved traffic filter (the dashboard's filter JSON)."}
_RULE = {
    "phase": {
        "type": "string",
        "enum": _PHASES,
        "description": "Pause the request (default) or the response.",
    },
    "method": {"type": "string", "maxLength": 32, "description": "Only this HTTP method (omit: any)."},
    "host_pattern": {
        "type": "string",
        "minLength": 1,
        "maxLength": 253,
        "description": "Host glob (* and ?).",
    },
    "path_pattern": {
        "type": "string",
        "minLength": 1,
        "maxLength": 2048,
        "description": "Path glob (* and ?).",
    },
    "enabled": {"type": "boolean"},
    "device": {**DEVICE_ARG, "description": "Only flows of this device (its uuid or exact name); omit: any."},
}
_PAGE = {"limit": LIMIT_ARG, "cursor": CURSOR_SCHEMA}

TOOLS: list[Tool] = [
    _admin(
        "unpair_device",
        "Unpair a device: its credential is voided at once and it stops capturing until paired again (the "
        "device row, its settings and its traffic stay). Use when a device is lost, compromised or handed "
        "on. Requires confirm: true after the user confirmed.",
        unpair_device,
        {"device": DEVICE_ARG, "confirm": CONFIRM},
        ("device",),
        "🔌 Unpairing a device…",
        destructive=True,
        section="devices",
    ),
    _admin(
        "delete_device",
        "Delete a device with its status, settings overrides and breakpoint rules (its captured entries stay "
        "until retention). Use to remove a device for good; unpair_device is enough to stop it. Requires "
        "confirm: true after the user confirmed.",
        delete_device,
        {"device": DEVICE_ARG, "confirm": CONFIRM},
        ("device",),
        "🗑️ Deleting a device…",
        destructive=True,
        section="devices",
    ),
    _gated(
        "wipe_entries",
        "Delete captured entries of one workspace: one host (exact), a time range [since, until), or both; "
        "the whole workspace only with everything: true. Without confirm it only answers how many entries "
        "match; call again with confirm: true once the user agreed. Needs entries:edit in that workspace.",
        wipe_entries,
        {
            "workspace": WORKSPACE,
            "host": {
                "type": "string",
                "minLength": 1,
                "maxLength": 253,
                "description": "One exact host name.",
            },
            "since": {**TIME, "description": f"{TIME['description']} Entries captured at or after it."},
            "until": {**TIME, "description": f"{TIME['description']} Entries captured before it."},
            "everything": {"type": "boolean", "description": "true to wipe every entry of the workspace."},
            "confirm": CONFIRM,
        },
        (),
        "🧹 Wiping captured entries…",
        "entries",
        destructive=True,
    ),
    _admin(
        "set_user_role",
        "Change a user's role (admin, member, viewer or a custom role; see list_users). The last admin "
        "cannot be demoted. Requires confirm: true after the user confirmed.",
        set_user_role,
        {"user": USER, "role": {"type": "string", "minLength": 2, "maxLength": 63}, "confirm": CONFIRM},
        ("user", "role"),
        "👤 Changing a user's role…",
        destructive=True,
        section="users",
    ),
    _admin(
        "create_workspace",
        "Create a workspace (a tenant of devices and traffic): slug (lowercase, digits, -), name, retention.",
        create_workspace,
        {
            "slug": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
            "name": {**_NAME, "maxLength": 200},
            "retention_days": _RETENTION,
        },
        ("slug", "name"),
        "🗂️ Creating a workspace…",
    ),
    _admin(
        "update_workspace",
        "Rename a workspace or change how many days its entries are kept.",
        update_workspace,
        {"workspace": WORKSPACE, "name": {**_NAME, "maxLength": 200}, "retention_days": _RETENTION},
        ("workspace",),
        "🗂️ Updating a workspace…",
    ),
    _admin(
        "delete_workspace",
        "Delete a workspace with its devices, members, tabs, rules and all its captured traffic. Requires "
        "confirm: true after the user confirmed.",
        delete_workspace,
        {"workspace": WORKSPACE, "confirm": CONFIRM},
        ("workspace",),
        "🗑️ Deleting a workspace…",
        destructive=True,
    ),
    _admin(
        "add_workspace_member",
        "Add a user to a workspace (adding a member again changes nothing).",
        add_workspace_member,
        {"workspace": WORKSPACE, "user": USER},
        ("workspace", "user"),
        "👥 Adding a workspace member…",
    ),
    _admin(
        "remove_workspace_member",
        "Remove a user from a workspace: they lose its devices, traffic and tabs at once. Requires confirm: "
        "true after the user confirmed.",
        remove_workspace_member,
        {"workspace": WORKSPACE, "user": USER, "confirm": CONFIRM},
        ("workspace", "user"),
        "🚪 Removing a workspace member…",
        destructive=True,
    ),
    _gated(
        "list_workspace_tabs",
        "Saved filter tabs (id, workspace, owner user_id or null when shared, name, filter, position), "
        "newest first; pass next_cursor as cursor for more.",
        list_workspace_tabs,
        {"workspace": WORKSPACE, **_PAGE},
        (),
        "🗂️ Listing tabs…",
        "workspaces",
        "read",
    ),
    _admin(
        "create_workspace_tab",
        "Create a saved filter tab in a workspace: shared with every member, or one user's (user).",
        create_workspace_tab,
        {
            "workspace": WORKSPACE,
            "name": _NAME,
            "filter": _FILTER,
            "user": {**USER, "description": "The tab's owner; omit to share it with the workspace."},
            "position": _POSITION,
        },
        ("name",),
        "🗂️ Creating a tab…",
    ),
    _admin(
        "update_workspace_tab",
        "Rename any tab, or change its filter or position (list_workspace_tabs gives ids).",
        update_workspace_tab,
        {"id": ID, "name": _NAME, "filter": _FILTER, "position": _POSITION},
        ("id",),
        "🗂️ Updating a tab…",
    ),
    _admin(
        "delete_workspace_tab",
        "Delete any tab (list_workspace_tabs gives ids). Requires confirm: true after the user confirmed.",
        delete_workspace_tab,
        {"id": ID, "confirm": CONFIRM},
        ("id",),
        "🗑️ Deleting a tab…",
        destructive=True,
    ),
    _admin(
        "set_global_settings",
        "Change the global settings JSON every device starts from (effective_settings shows it): the keys "
        "given are merged in (null removes one), or replace: true sets the whole object. Answers which keys "
        "changed.",
        set_global_settings,
        {"settings": SETTINGS, "replace": REPLACE},
        ("settings",),
        "⚙️ Changing the global settings…",
        section="global",
    ),
    _admin(
        "set_device_settings",
        "Change one device's settings overrides (laid over the global settings): merged like "
        "set_global_settings, or replace: true; {} with replace clears them. Answers which keys changed.",
        set_device_settings,
        {"device": DEVICE_ARG, "settings": SETTINGS, "replace": REPLACE},
        ("device", "settings"),
        "⚙️ Changing a device's settings…",
        section="devices",
    ),
    _gated(
        "list_breakpoint_rules",
        "Breakpoint rules (id, workspace, device or null for any, phase, method, host and path globs, "
        "enabled), newest first; pass next_cursor as cursor for more. list_breakpoints shows the flows they "
        "paused.",
        list_breakpoint_rules,
        {"workspace": WORKSPACE, **_PAGE},
        (),
        "⏸️ Listing breakpoint rules…",
        "breakpoints",
        "read",
    ),
    _gated(
        "create_breakpoint_rule",
        "Create a breakpoint rule: matching flows of the workspace (or of one device) pause at the request "
        "or the response until someone continues, edits or aborts them. Needs breakpoints:edit in the "
        "workspace.",
        create_breakpoint_rule,
        {"workspace": WORKSPACE, **_RULE},
        (),
        "⏸️ Creating a breakpoint rule…",
        "breakpoints",
    ),
    _gated(
        "update_breakpoint_rule",
        "Change a breakpoint rule (list_breakpoint_rules gives ids): patterns, phase, method, enabled, "
        "device (any_device: true makes it match every device again).",
        update_breakpoint_rule,
        {"id": ID, **_RULE, "any_device": {"type": "boolean"}},
        ("id",),
        "⏸️ Updating a breakpoint rule…",
        "breakpoints",
    ),
    _gated(
        "delete_breakpoint_rule",
        "Delete a breakpoint rule (flows it paused keep their history). Requires confirm: true after the "
        "user confirmed.",
        delete_breakpoint_rule,
        {"id": ID, "confirm": CONFIRM},
        ("id",),
        "🗑️ Deleting a breakpoint rule…",
        "breakpoints",
        destructive=True,
    ),
    _gated(
        "resend_entry",
        "Ask the proxy that captured a request to send it again to the real server (entry ids come from "
        "recent_entries or inspect_requests); the new exchange is captured as a new entry. A method other "
        "than GET, HEAD or OPTIONS may repeat its effect, so it needs confirm: true after the user "
        "confirmed. Needs breakpoints:edit in the entry's workspace.",
        resend_entry,
        {"entry_id": ID, "confirm": CONFIRM},
        ("entry_id",),
        "🔁 Resending a request…",
        "breakpoints",
    ),
]
