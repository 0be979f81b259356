"""The MCP server's administrative tools (functions/mcp_server/admin_tools.py, docs/mcp.md "The administrative
tools") end to end through the SDK's client, under real session tokens: an admin runs them and the database
shows the change; members and viewers are not offered what their role lacks, and a forged call is a tool error
that changes nothing; an admin's read-only grant lists none of the writes; a destructive call without
`confirm: true` does nothing. The helpers are test_mcp_server.py's."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import httpx2
import psycopg
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from busymate import tokens
from busymate.functions.mcp_server.admin_tools import TOOLS, AdminTool
from busymate.functions.mcp_server.tools import catalogue
from busymate.settings import Settings
from tests.e2e.test_mcp_server import (
    Person,
    _call,
    _oauth_token,
    _person,
    _session_token,
    _text,
    _tools,
    _url,
)
from tests.world import World, add_user

ADMIN_WRITES = {t.name for t in TOOLS if isinstance(t, AdminTool)}
WRITES = {t.name for t in TOOLS if t.kind == "write"}
DESTRUCTIVE = {"unpair_device", "delete_device", "wipe_entries", "set_user_role", "remove_workspace_member"}


@pytest.fixture(scope="module")
def folks(stack: Settings, world: World) -> Iterator[dict[str, str]]:
    """Session tokens of an admin, a member and a viewer of w1 (real sessions: the server checks them), and of
    `wiper`, a custom role with entries:edit but not grants_all."""
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        conn.execute(
            "insert into public.roles (name, description, capabilities) values ('wiper', 'wipes traffic', "
            """'{"entries": {"view": true, "edit": true}, "workspaces": {"view": true}}') """
            "on conflict (name) do nothing"
        )
    made = {role: _person(stack, world, role) for role in ("admin", "member", "viewer", "wiper")}
    yield {role: _session_token(stack, world, person) for role, person in made.items()}
    for person in made.values():
        _forget(stack, person)


def _forget(stack: Settings, person: Person) -> None:
    service = tokens.service_role_key(stack.jwt_secret)
    httpx.delete(
        f"{stack.auth_url}/admin/users/{person.id}",
        headers={"apikey": service, "authorization": f"Bearer {service}"},
    )


def _json(stack: Settings, token: str, name: str, args: dict[str, Any]) -> Any:
    """A call that must succeed: its JSON answer."""
    result = _call(stack, token, name, args)
    assert result.is_error is False, _text(result)
    return json.loads(_text(result))


def _refused(stack: Settings, token: str, name: str, args: dict[str, Any]) -> str:
    """A call that must be a tool error (not an HTTP error): its text."""
    result = _call(stack, token, name, args)
    assert result.is_error is True, _text(result)
    return _text(result)


def _sql(stack: Settings, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


MADE: list[str] = []  # devices a test made, removed when it ends


@pytest.fixture(autouse=True)
def _remove_made_devices(stack: Settings) -> Iterator[None]:
    """The session's w1 keeps only the world's devices: other files count them."""
    yield
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        while MADE:
            conn.execute("delete from public.devices where uuid = %s", (MADE.pop(),))


def _device(stack: Settings, world: World, name: str) -> str:
    """A paired proxy device of w1 of this test's own (the world's devices stay as they are), removed when
    the test ends."""
    rows = _sql(
        stack,
        "with d as (insert into public.devices (workspace_id, owner_user_id, name, source) "
        "values (%s, %s, %s, 'proxy') returning uuid) "
        "insert into private.device_credentials (device_uuid) select uuid from d returning device_uuid",
        world.ids["w1"],
        world.ids["member"],
        f"{name}-{uuid.uuid4().hex[:6]}",
    )
    MADE.append(str(rows[0][0]))
    return str(rows[0][0])


def _entries(
    stack: Settings, workspace: str, device: str, host: str, ages: list[int], method: str = "GET"
) -> None:
    """Entries of `host` captured `ages` minutes ago."""
    now = datetime.now(UTC)
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        for age in ages:
            conn.execute(
                "insert into public.entries (workspace_id, device_uuid, source, method, host, captured_at) "
                "values (%s, %s, 'proxy', %s, %s, %s)",
                (workspace, device, method, host, now - timedelta(minutes=age)),
            )


def _count(stack: Settings, workspace: str, host: str) -> int:
    return int(
        _sql(
            stack,
            "select count(*) from public.entries where workspace_id = %s and host = %s",
            workspace,
            host,
        )[0][0]
    )


def test_an_admin_is_offered_every_administrative_tool_annotated(
    stack: Settings, folks: dict[str, str]
) -> None:
    async def listed() -> list[Any]:
        async with (
            httpx2.AsyncClient(headers={"authorization": f"Bearer {folks['admin']}"}, timeout=30) as http,
            Client(streamable_http_client(_url(stack), http_client=http)) as client,
        ):
            return list((await client.list_tools()).tools)

    tools = {tool.name: tool for tool in asyncio.run(listed())}
    assert list(tools) == [t.name for t in catalogue()]
    for tool in TOOLS:
        hints = tools[tool.name].annotations
        assert hints is not None
        assert hints.read_only_hint is (tool.kind != "write"), tool.name
        assert hints.destructive_hint is (tool.name in DESTRUCTIVE or tool.name.startswith("delete_")), (
            tool.name
        )
        schema = tools[tool.name].input_schema
        assert schema["additionalProperties"] is False, tool.name
        if tool.destructive:
            assert "confirm" in schema["properties"], tool.name


def test_an_admin_unpairs_a_device_only_when_confirmed(
    stack: Settings, world: World, folks: dict[str, str]
) -> None:
    device = _device(stack, world, "mcp-unpair")
    credential = "select count(*) from private.device_credentials where device_uuid = %s"
    text = _refused(stack, folks["admin"], "unpair_device", {"device": device})
    assert "confirm: true" in text
    assert device in text
    assert _sql(stack, credential, device) == [(1,)]
    done = _json(stack, folks["admin"], "unpair_device", {"device": device, "confirm": True})
    assert done["unpaired"]["uuid"] == device
    assert done["unpaired"]["paired"] is False
    assert _sql(stack, credential, device) == [(0,)]
    assert _sql(stack, "select paired from public.devices where uuid = %s", device) == [(False,)]
    # delete_device, the same way: nothing without confirm, gone with it.
    _refused(stack, folks["admin"], "delete_device", {"device": device})
    assert _sql(stack, "select count(*) from public.devices where uuid = %s", device) == [(1,)]
    assert _json(stack, folks["admin"], "delete_device", {"device": device, "confirm": True})["ok"] is True
    assert _sql(stack, "select count(*) from public.devices where uuid = %s", device) == [(0,)]


def test_an_admin_wipes_one_hosts_entries_and_nothing_else(
    stack: Settings, world: World, folks: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    gone, kept = f"wipe-{tag}.example", f"keep-{tag}.example"
    w1, w2 = world.ids["w1"], world.ids["w2"]
    _entries(stack, w1, world.ids["d1"], gone, [5, 60, 120])
    _entries(stack, w1, world.ids["d1"], kept, [5, 120])
    _entries(stack, w2, world.ids["d2"], gone, [5, 60])
    args: dict[str, Any] = {"workspace": w1, "host": gone}
    # Without confirm: how many would go, and nothing goes.
    preview = _refused(stack, folks["admin"], "wipe_entries", args)
    assert "3 entries" in preview
    assert "confirm: true" in preview
    assert _count(stack, w1, gone) == 3
    # Neither a host nor a time: refused, even confirmed.
    assert "everything" in _refused(stack, folks["admin"], "wipe_entries", {"workspace": w1, "confirm": True})
    done = _json(stack, folks["admin"], "wipe_entries", {**args, "confirm": True})
    assert done["deleted"] == 3
    assert done["workspace"]["id"] == w1
    assert (_count(stack, w1, gone), _count(stack, w1, kept), _count(stack, w2, gone)) == (0, 2, 2)
    # A time range on the other host: only the newer row.
    since = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    preview = _refused(stack, folks["admin"], "wipe_entries", {"workspace": w1, "host": kept, "since": since})
    assert ": 1 entry now" in preview
    done = _json(
        stack,
        folks["admin"],
        "wipe_entries",
        {"workspace": w1, "host": kept, "since": since, "confirm": True},
    )
    assert done["deleted"] == 1
    assert (_count(stack, w1, kept), _count(stack, w2, gone)) == (1, 2)


def test_wiping_needs_entries_edit_in_that_workspace(
    stack: Settings, world: World, folks: dict[str, str]
) -> None:
    host = f"guarded-{uuid.uuid4().hex[:8]}.example"
    w1, w2 = world.ids["w1"], world.ids["w2"]
    _entries(stack, w1, world.ids["d1"], host, [5, 10])
    _entries(stack, w2, world.ids["d2"], host, [5])
    # A member and a viewer are not offered it; a forged call is a tool error and deletes nothing.
    for role in ("member", "viewer"):
        assert "wipe_entries" not in _tools(stack, folks[role])
        text = _refused(stack, folks[role], "wipe_entries", {"workspace": w1, "host": host, "confirm": True})
        assert "not available" in text
    # A role with entries:edit (not an admin) wipes its own workspace, and not another one.
    assert "wipe_entries" in _tools(stack, folks["wiper"])
    _refused(stack, folks["wiper"], "wipe_entries", {"workspace": w2, "host": host, "confirm": True})
    assert (_count(stack, w1, host), _count(stack, w2, host)) == (2, 1)
    done = _json(stack, folks["wiper"], "wipe_entries", {"workspace": w1, "host": host, "confirm": True})
    assert done["deleted"] == 2
    assert (_count(stack, w1, host), _count(stack, w2, host)) == (0, 1)
    # ...and none of the admins' tools.
    assert not ADMIN_WRITES & set(_tools(stack, folks["wiper"]))


def test_an_admin_sets_a_users_role_only_when_confirmed(
    stack: Settings, world: World, folks: dict[str, str]
) -> None:
    target, _ = add_user(stack, world.ids["w1"], "viewer", prefix="mcp-role")
    role = "select role from public.profiles where id = %s"
    text = _refused(stack, folks["admin"], "set_user_role", {"user": target, "role": "member"})
    assert "viewer to member" in text
    assert _sql(stack, role, target) == [("viewer",)]
    done = _json(stack, folks["admin"], "set_user_role", {"user": target, "role": "member", "confirm": True})
    assert done["user"] == {"id": target, "email": done["user"]["email"], "role": "member"}
    assert done["previous_role"] == "viewer"
    assert _sql(stack, role, target) == [("member",)]
    # A role that does not exist: the database's refusal, as a tool error.
    assert "no role" in _refused(
        stack, folks["admin"], "set_user_role", {"user": target, "role": "nope", "confirm": True}
    )


def test_an_admin_creates_renames_lists_and_deletes_a_tab(
    stack: Settings, world: World, folks: dict[str, str]
) -> None:
    name = f"tab-{uuid.uuid4().hex[:8]}"
    made = _json(
        stack,
        folks["admin"],
        "create_workspace_tab",
        {"workspace": world.ids["w1"], "name": name, "filter": {"host": "api.example.com"}},
    )["tab"]
    assert made["user_id"] is None  # shared
    renamed = _json(stack, folks["admin"], "update_workspace_tab", {"id": made["id"], "name": f"{name}-2"})[
        "tab"
    ]
    assert renamed["name"] == f"{name}-2"
    assert renamed["filter"] == {"host": "api.example.com"}
    assert _sql(stack, "select name from public.workspace_tabs where id = %s", made["id"]) == [(f"{name}-2",)]
    listed = _json(stack, folks["admin"], "list_workspace_tabs", {"workspace": world.ids["w1"], "limit": 50})
    assert made["id"] in [tab["id"] for tab in listed["tabs"]]
    _refused(stack, folks["admin"], "delete_workspace_tab", {"id": made["id"]})
    assert _sql(stack, "select count(*) from public.workspace_tabs where id = %s", made["id"]) == [(1,)]
    # A member sees the shared tab but may not delete it: not offered, and a forged call changes nothing.
    assert "delete_workspace_tab" not in _tools(stack, folks["member"])
    assert "not available" in _refused(
        stack, folks["member"], "delete_workspace_tab", {"id": made["id"], "confirm": True}
    )
    _json(stack, folks["admin"], "delete_workspace_tab", {"id": made["id"], "confirm": True})
    assert _sql(stack, "select count(*) from public.workspace_tabs where id = %s", made["id"]) == [(0,)]


def test_an_admin_merges_settings_json(stack: Settings, world: World, folks: dict[str, str]) -> None:
    key = f"mcp_test_{uuid.uuid4().hex[:6]}"
    before = _sql(stack, "select settings from public.settings_global")[0][0]
    try:
        done = _json(stack, folks["admin"], "set_global_settings", {"settings": {key: "on"}})
        assert done["set"] == [key]
        assert done["removed"] == []
        after = _sql(stack, "select settings from public.settings_global")[0][0]
        assert after == {**before, key: "on"}  # merged: every other key kept
        done = _json(stack, folks["admin"], "set_global_settings", {"settings": {key: None}})
        assert done["removed"] == [key]
        assert _sql(stack, "select settings from public.settings_global")[0][0] == before
    finally:
        with psycopg.connect(stack.db_url(), autocommit=True) as conn:
            conn.execute("update public.settings_global set settings = %s", (json.dumps(before),))
    device = _device(stack, world, "mcp-settings")
    _json(stack, folks["admin"], "set_device_settings", {"device": device, "settings": {"a": 1}})
    _json(stack, folks["admin"], "set_device_settings", {"device": device, "settings": {"b": 2}})
    overrides = "select overrides from public.settings_device where device_uuid = %s"
    assert _sql(stack, overrides, device) == [({"a": 1, "b": 2},)]
    done = _json(
        stack,
        folks["admin"],
        "set_device_settings",
        {"device": device, "settings": {"c": 3}, "replace": True},
    )
    assert done["removed"] == ["a", "b"]
    assert _sql(stack, overrides, device) == [({"c": 3},)]
    # A member is not offered either, and a forged call changes nothing.
    assert not {"set_global_settings", "set_device_settings"} & set(_tools(stack, folks["member"]))
    _refused(stack, folks["member"], "set_device_settings", {"device": device, "settings": {"c": 4}})
    assert _sql(stack, overrides, device) == [({"c": 3},)]


def test_breakpoint_rules_and_resend(stack: Settings, world: World, folks: dict[str, str]) -> None:
    host = f"bp-{uuid.uuid4().hex[:8]}.example"
    rule = _json(
        stack,
        folks["admin"],
        "create_breakpoint_rule",
        {"workspace": world.ids["w1"], "host_pattern": host, "path_pattern": "/v1/*", "method": "post"},
    )["rule"]
    assert (rule["host_pattern"], rule["method"], rule["phase"], rule["enabled"]) == (
        host,
        "POST",
        "request",
        True,
    )
    listed = _json(stack, folks["admin"], "list_breakpoint_rules", {"workspace": world.ids["w1"]})
    assert rule["id"] in [row["id"] for row in listed["rules"]]
    off = _json(stack, folks["admin"], "update_breakpoint_rule", {"id": rule["id"], "enabled": False})["rule"]
    assert off["enabled"] is False
    # A viewer sees rules but is offered no change; a forged delete is a tool error.
    viewer = set(_tools(stack, folks["viewer"]))
    assert "list_breakpoint_rules" in viewer
    assert not WRITES & viewer
    _refused(stack, folks["viewer"], "delete_breakpoint_rule", {"id": rule["id"], "confirm": True})
    _refused(stack, folks["admin"], "delete_breakpoint_rule", {"id": rule["id"]})
    exists = "select count(*) from public.breakpoints where id = %s"
    assert _sql(stack, exists, rule["id"]) == [(1,)]
    _json(stack, folks["admin"], "delete_breakpoint_rule", {"id": rule["id"], "confirm": True})
    assert _sql(stack, exists, rule["id"]) == [(0,)]
    # Resend: a GET at once; a POST only when confirmed.
    device = _device(stack, world, "mcp-resend")
    _entries(stack, world.ids["w1"], device, host, [1])
    _entries(stack, world.ids["w1"], device, host, [2], method="POST")
    rows = _sql(stack, "select id, method from public.entries where host = %s", host)
    ids = {method: str(entry_id) for entry_id, method in rows}
    requests = "select count(*) from public.resend_requests where entry_id = %s"
    sent = _json(stack, folks["admin"], "resend_entry", {"entry_id": ids["GET"]})
    assert sent["resend"]["entry_id"] == ids["GET"]
    assert _sql(stack, requests, ids["GET"]) == [(1,)]
    assert "confirm: true" in _refused(stack, folks["admin"], "resend_entry", {"entry_id": ids["POST"]})
    assert _sql(stack, requests, ids["POST"]) == [(0,)]
    _json(stack, folks["admin"], "resend_entry", {"entry_id": ids["POST"], "confirm": True})
    assert _sql(stack, requests, ids["POST"]) == [(1,)]
    # A member (breakpoints:edit in w1) is offered resend and the rules, not the admins' tools.
    member = set(_tools(stack, folks["member"]))
    assert {"resend_entry", "create_breakpoint_rule", "delete_breakpoint_rule"} <= member
    assert not ADMIN_WRITES & member
    assert "not available" in _refused(
        stack, folks["member"], "unpair_device", {"device": device, "confirm": True}
    )
    assert _sql(stack, "select paired from public.devices where uuid = %s", device) == [(True,)]


def test_a_read_only_grant_of_an_admin_lists_none_of_the_writes(stack: Settings, world: World) -> None:
    admin: Person = _person(stack, world, "admin")
    try:
        token = _oauth_token(stack, admin, resource=_url(stack), scope="busymate:read", access="read")
        listed = set(_tools(stack, token))
    finally:
        _forget(stack, admin)
    assert not WRITES & listed
    assert {"list_workspace_tabs", "list_breakpoint_rules"} <= listed


def test_an_admin_manages_a_workspace_and_its_members(
    stack: Settings, world: World, folks: dict[str, str]
) -> None:
    slug = f"mcp-{uuid.uuid4().hex[:8]}"
    made = _json(stack, folks["admin"], "create_workspace", {"slug": slug, "name": "MCP test"})["workspace"]
    assert (made["slug"], made["retention_days"]) == (slug, 7)
    changed = _json(stack, folks["admin"], "update_workspace", {"workspace": slug, "retention_days": 14})
    assert (changed["workspace"]["name"], changed["workspace"]["retention_days"]) == ("MCP test", 14)
    user, _ = add_user(stack, world.ids["w1"], "viewer", prefix="mcp-ws")
    member = "select count(*) from public.workspace_members where workspace_id = %s and user_id = %s"
    _json(stack, folks["admin"], "add_workspace_member", {"workspace": slug, "user": user})
    assert _sql(stack, member, made["id"], user) == [(1,)]
    assert "confirm: true" in _refused(
        stack, folks["admin"], "remove_workspace_member", {"workspace": slug, "user": user}
    )
    assert _sql(stack, member, made["id"], user) == [(1,)]
    _json(
        stack, folks["admin"], "remove_workspace_member", {"workspace": slug, "user": user, "confirm": True}
    )
    assert _sql(stack, member, made["id"], user) == [(0,)]
    # A member is offered none of it; a forged delete is a tool error.
    assert not {"create_workspace", "delete_workspace"} & set(_tools(stack, folks["member"]))
    _refused(stack, folks["member"], "delete_workspace", {"workspace": made["id"], "confirm": True})
    exists = "select count(*) from public.workspaces where id = %s"
    _refused(stack, folks["admin"], "delete_workspace", {"workspace": slug})
    assert _sql(stack, exists, made["id"]) == [(1,)]
    _json(stack, folks["admin"], "delete_workspace", {"workspace": slug, "confirm": True})
    assert _sql(stack, exists, made["id"]) == [(0,)]


def test_the_rule_list_pages_with_a_cursor(stack: Settings, world: World, folks: dict[str, str]) -> None:
    slug = f"mcp-page-{uuid.uuid4().hex[:6]}"
    made = _json(stack, folks["admin"], "create_workspace", {"slug": slug, "name": "paging"})["workspace"]
    try:
        for n in range(3):
            _json(
                stack,
                folks["admin"],
                "create_breakpoint_rule",
                {"workspace": slug, "host_pattern": f"h{n}.example"},
            )
        seen: list[str] = []
        cursor = None
        for _ in range(3):
            page = _json(
                stack,
                folks["admin"],
                "list_breakpoint_rules",
                {"workspace": slug, "limit": 2, **({"cursor": cursor} if cursor else {})},
            )
            seen += [rule["host_pattern"] for rule in page["rules"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == ["h0.example", "h1.example", "h2.example"]
        assert "cursor" in _refused(stack, folks["admin"], "list_breakpoint_rules", {"cursor": "not-ours!"})
    finally:
        _json(stack, folks["admin"], "delete_workspace", {"workspace": made["id"], "confirm": True})
