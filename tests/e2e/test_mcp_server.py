"""The MCP server at /functions/v1/mcp (docs/mcp.md) end to end, against the session stack: the official `mcp`
SDK's client does the whole OAuth path (discovery from the 401, registration, PKCE, the consent page as plain
HTTP forms, the token) and then lists and calls tools; raw HTTP proves each refusal (another resource's token,
an expired one, a grant without `busymate:read`, a write under a read-only grant, a host it does not serve).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import jwt
import psycopg
import pytest
from mcp.client import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata, OAuthToken
from mcp.types import CallToolResult
from playwright.async_api import Route, async_playwright
from pydantic import AnyUrl

from busymate import scopes, tokens
from busymate.api_client import AsyncApi
from busymate.functions.busybro.core import ToolRefused
from busymate.functions.busybro.tools.registry import all_tools
from busymate.functions.mcp_server.paging import Keyset
from busymate.functions.mcp_server.tools import catalogue
from busymate.gateway.auth import oauth_pages
from busymate.settings import Settings
from busymate.stack.api_process import settings_env
from tests.e2e.test_oauth_mcp import Storage, _hidden
from tests.world import World

CHROMIUM = Path("/usr/bin/chromium")
REDIRECT = "http://127.0.0.1:53683/callback"  # never listened on: the code is read from the Location header
JSON_RPC = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
READS = [t.name for t in catalogue() if t.kind != "write"]
WRITES = [t.name for t in catalogue() if t.kind == "write"]


@dataclass
class Person:
    """A user with a password (the consent page signs them in), a member of w1 with `role`."""

    id: str
    email: str
    password: str


def _url(stack: Settings) -> str:
    return f"{stack.api_url}/functions/v1/mcp"


def _metadata_url(stack: Settings) -> str:
    return f"{stack.api_url}/.well-known/oauth-protected-resource/functions/v1/mcp"


def _person(stack: Settings, world: World, role: str) -> Person:
    email = f"mcp-{role}-{uuid.uuid4().hex[:8]}@example.com"
    password = secrets.token_urlsafe(12)
    service = tokens.service_role_key(stack.jwt_secret)
    created = httpx.post(
        f"{stack.auth_url}/admin/users",
        json={"email": email, "password": password, "email_confirm": True},
        headers={"apikey": service, "authorization": f"Bearer {service}"},
    ).json()
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        conn.execute(
            "update public.profiles set role = %(r)s where id = %(u)s", {"r": role, "u": created["id"]}
        )
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id) values (%(w)s, %(u)s)",
            {"w": world.ids["w1"], "u": created["id"]},
        )
    return Person(created["id"], email, password)


@pytest.fixture(scope="module")
def people(stack: Settings, world: World) -> Iterator[dict[str, Person]]:
    made = {role: _person(stack, world, role) for role in ("admin", "member", "nocaps")}
    yield made
    service = tokens.service_role_key(stack.jwt_secret)
    for person in made.values():
        httpx.delete(
            f"{stack.auth_url}/admin/users/{person.id}",
            headers={"apikey": service, "authorization": f"Bearer {service}"},
        )


def _session_token(stack: Settings, world: World, person: Person) -> str:
    """The dashboard's own session token: a password sign-in at /auth/v1 (aud `authenticated`, no scope)."""
    answer = httpx.post(
        f"{stack.auth_url}/token?grant_type=password",
        json={"email": person.email, "password": person.password},
        headers={"apikey": world.anon_key},
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def consent(authorize_url: str, person: Person, access: str | None) -> str:
    """Be the browser: open the page, sign in, choose the access (read / write), approve; the Location."""
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        page = await browser.get(authorize_url)
        assert page.status_code == 200, page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action
        authorization_id = _hidden(page.text, "authorization_id")
        signed_in = await browser.post(
            action[1],
            data={
                "authorization_id": authorization_id,
                "action": "sign_in",
                "email": person.email,
                "password": person.password,
            },
        )
        assert signed_in.status_code == 200, signed_in.text
        # The approval's redirect to the client is allowed by the page's CSP (form-action governs it too).
        policy = signed_in.headers["content-security-policy"]
        assert "form-action 'self' http://127.0.0.1:53683;" in policy + ";"
        form = {
            "authorization_id": authorization_id,
            "csrf": _hidden(signed_in.text, "csrf"),
            "action": "approve",
        }
        if access is not None:
            assert f'name="access" value="{access}"' in signed_in.text  # the page offers that choice
            form["access"] = access
        decided = await browser.post(action[1], data=form)
        assert decided.status_code == 302, decided.text
        return decided.headers["location"]


async def chromium_consent(authorize_url: str, person: Person, access: str | None) -> str:
    """The same in Debian's Chromium (Playwright, nothing downloaded): the page as a person sees it, its
    form submitted by clicks; the redirect to the client is caught before it leaves the browser."""
    if not CHROMIUM.exists():  # make testdeps installs it: missing means the setup broke
        pytest.fail(f"{CHROMIUM} is missing: run make testdeps")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            page = await browser.new_page()
            landed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            async def catch(route: Route) -> None:
                if not landed.done():
                    landed.set_result(route.request.url)
                await route.fulfill(status=200, body="back at the client")

            await page.route(f"{REDIRECT}*", catch)
            await page.goto(authorize_url)
            await page.get_by_label("Email").fill(person.email)
            await page.get_by_label("Password").fill(person.password)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("button", name="Approve").wait_for()
            if access is not None:
                await page.locator(f'input[name="access"][value="{access}"]').check()
            await page.get_by_role("button", name="Approve").click()
            return await asyncio.wait_for(landed, 30)
        finally:
            await browser.close()


@dataclass
class Flow:
    """What one run of the SDK's client saw and got."""

    seen: list[str]
    tools: list[Any]
    call: CallToolResult
    token: OAuthToken
    client_id: str
    challenge_scope: str


def _sdk_flow(
    stack: Settings, person: Person, access: str, tool: str, args: dict[str, Any], *, chromium: bool = False
) -> Flow:
    """The SDK's OAuthClientProvider from nothing: 401, metadata, registration, PKCE, consent, token; then
    tools/list and one tools/call."""
    url = _url(stack)
    storage = Storage()
    seen: list[str] = []
    result: dict[str, AuthorizationCodeResult] = {}
    asked: dict[str, str] = {}

    async def redirect_handler(authorize: str) -> None:
        query = parse_qs(urlsplit(authorize).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["resource"] == [url]
        asked["scope"] = query["scope"][0]
        location = await (chromium_consent if chromium else consent)(authorize, person, access)
        answer = parse_qs(urlsplit(location).query)
        assert answer["iss"] == [stack.auth_url]
        result["code"] = AuthorizationCodeResult(
            code=answer["code"][0], state=answer["state"][0], iss=stack.auth_url
        )

    async def callback_handler() -> AuthorizationCodeResult:
        return result["code"]

    async def log(request: httpx2.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="Busymate MCP server test",
            redirect_uris=[AnyUrl(REDIRECT)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def run() -> tuple[list[Any], CallToolResult]:
        async with (
            httpx2.AsyncClient(auth=provider, event_hooks={"request": [log]}, timeout=30) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            listed = await client.list_tools()
            return list(listed.tools), await client.call_tool(tool, args)

    listed, called = asyncio.run(run())
    assert storage.tokens is not None
    assert storage.client is not None
    return Flow(seen, listed, called, storage.tokens, str(storage.client.client_id), asked["scope"])


def _text(result: CallToolResult) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


def _post(stack: Settings, token: str | None, body: object, **headers: str) -> httpx.Response:
    sent = {**JSON_RPC, **headers}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return httpx.post(_url(stack), headers=sent, json=body, timeout=30)


def _tools(stack: Settings, token: str) -> list[str]:
    """tools/list under a bearer token, through the SDK's client (no OAuth: the token is given)."""

    async def run() -> list[str]:
        async with (
            httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30) as http,
            Client(streamable_http_client(_url(stack), http_client=http)) as client,
        ):
            return [tool.name for tool in (await client.list_tools()).tools]

    return asyncio.run(run())


def _call(stack: Settings, token: str, name: str, args: dict[str, Any]) -> CallToolResult:
    async def run() -> CallToolResult:
        async with (
            httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30) as http,
            Client(streamable_http_client(_url(stack), http_client=http)) as client,
        ):
            return await client.call_tool(name, args)

    return asyncio.run(run())


def _challenge(response: httpx.Response) -> dict[str, str]:
    header = response.headers.get("www-authenticate", "")
    assert header.startswith("Bearer "), header
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def _oauth_token(stack: Settings, person: Person, *, resource: str, scope: str, access: str | None) -> str:
    """An OAuth access token by hand: registration, PKCE, consent, code exchange."""
    client = httpx.post(
        f"{stack.auth_url}/oauth/clients/register",
        json={"client_name": "manual", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"},
    ).json()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    params = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT,
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": resource,
        "scope": scope,
    }
    location = asyncio.run(
        consent(str(httpx.URL(f"{stack.auth_url}/oauth/authorize", params=params)), person, access)
    )
    issued = httpx.post(
        f"{stack.auth_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": parse_qs(urlsplit(location).query)["code"][0],
            "redirect_uri": REDIRECT,
            "client_id": client["client_id"],
            "code_verifier": verifier,
        },
    )
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["access_token"]
    return token


def test_the_sdk_discovers_authorizes_lists_and_calls_as_an_admin_with_read_write(
    stack: Settings, world: World, people: dict[str, Person]
) -> None:
    # Without a token: 401 naming the metadata and the scopes to ask for.
    refused = _post(stack, None, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401
    challenge = _challenge(refused)
    assert challenge["resource_metadata"] == _metadata_url(stack)
    assert challenge["scope"] == "busymate:read busymate:write"
    metadata = httpx.get(_metadata_url(stack)).json()
    assert metadata["resource"] == _url(stack)
    assert metadata["authorization_servers"] == [stack.auth_url]
    assert metadata["scopes_supported"] == ["busymate:read", "busymate:write"]
    assert metadata["bearer_methods_supported"] == ["header"]

    flow = _sdk_flow(stack, people["admin"], "write", "list_devices", {}, chromium=True)
    for step in (
        "GET /.well-known/oauth-protected-resource/functions/v1/mcp",
        "GET /.well-known/oauth-authorization-server/auth/v1",
        "POST /auth/v1/oauth/clients/register",
        "POST /auth/v1/oauth/token",
    ):
        assert step in flow.seen
    assert flow.challenge_scope.split()[:2] == ["busymate:read", "busymate:write"]
    claims = jwt.decode(flow.token.access_token, options={"verify_signature": False})
    assert claims["aud"] == _url(stack)
    assert claims["scope"] == "busymate:read busymate:write"
    assert flow.token.scope == "busymate:read busymate:write"
    # An admin with a read-write grant: every tool of the registry, in its order, annotated.
    names = [tool.name for tool in flow.tools]
    assert names == [t.name for t in catalogue()]
    by_name = {tool.name: tool for tool in flow.tools}
    assert by_name["list_devices"].annotations.read_only_hint is True
    assert by_name["inspect_requests"].annotations.read_only_hint is True
    assert by_name["rename_device"].annotations.read_only_hint is False
    assert by_name["rename_device"].annotations.destructive_hint is False
    destructive = [t.name for t in all_tools() if t.destructive]
    assert destructive
    assert all(by_name[name].annotations.destructive_hint is True for name in destructive)
    # The call ran: an admin sees every workspace's devices.
    assert flow.call.is_error is False, _text(flow.call)
    assert "d1-e2e" in _text(flow.call)
    assert "d2-e2e" in _text(flow.call)


def test_a_read_only_grant_of_an_admin_lists_and_runs_only_reads(
    stack: Settings, world: World, people: dict[str, Person]
) -> None:
    flow = _sdk_flow(stack, people["admin"], "read", "list_devices", {})
    assert (
        jwt.decode(flow.token.access_token, options={"verify_signature": False})["scope"] == "busymate:read"
    )
    assert [tool.name for tool in flow.tools] == READS
    assert flow.call.is_error is False
    # A write anyway: 403 insufficient_scope naming the scope to ask for (the client may step up).
    write = _post(
        stack,
        flow.token.access_token,
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "rename_device", "arguments": {}},
        },
    )
    assert write.status_code == 403
    challenge = _challenge(write)
    assert challenge["error"] == "insufficient_scope"
    assert "busymate:write" in challenge["scope"].split()
    assert challenge["resource_metadata"] == _metadata_url(stack)
    # A refresh keeps the grant's scope: still read-only.
    refreshed = httpx.post(
        f"{stack.auth_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": flow.token.refresh_token or "",
            "client_id": flow.client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "busymate:read"
    renewed = refreshed.json()["access_token"]
    assert jwt.decode(renewed, options={"verify_signature": False})["scope"] == "busymate:read"
    assert _tools(stack, renewed) == READS


def test_the_dashboard_session_token_is_accepted_and_the_role_decides(
    stack: Settings, world: World, people: dict[str, Person]
) -> None:
    admin = _tools(stack, _session_token(stack, world, people["admin"]))
    assert admin == [t.name for t in catalogue()]
    viewer_token = _session_token(stack, world, people["nocaps"])
    viewer = _tools(stack, viewer_token)
    assert viewer
    assert not set(viewer) & set(WRITES)
    assert "list_devices" in viewer
    # A tool that was not offered, called anyway: a tool error, not a 500 and not a run.
    forged = _call(stack, viewer_token, "rename_device", {"device": world.ids["d1"], "name": "hijacked"})
    assert forged.is_error is True
    assert "not available" in _text(forged)


def test_a_write_the_database_refuses_is_a_tool_error(
    stack: Settings, world: World, people: dict[str, Person]
) -> None:
    member = _session_token(stack, world, people["member"])
    assert "rename_device" in _tools(stack, member)
    # Reads run under the member's own token: w1's devices, nothing of w2 (RLS).
    devices = _text(_call(stack, member, "list_devices", {}))
    assert "d1-e2e" in devices
    assert "d2-e2e" not in devices
    # Not the member's device (the world's d1 belongs to the world's member): refused, as a tool result.
    refused = _call(stack, member, "rename_device", {"device": world.ids["d1"], "name": "not-yours"})
    assert refused.is_error is True, _text(refused)
    with psycopg.connect(stack.db_url()) as conn:
        row = conn.execute("select name from public.devices where uuid = %s", (world.ids["d1"],)).fetchone()
    assert row is not None
    assert row[0] == "d1-e2e"
    # docs/mcp.md's plain-HTTP example: one JSON-RPC answer, the tool's JSON as text.
    raw = _post(
        stack,
        member,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "count_entries", "arguments": {"since_minutes": 60}},
        },
    )
    assert raw.status_code == 200, raw.text
    assert raw.json()["result"]["isError"] is False
    assert raw.json()["result"]["content"][0]["text"].startswith('{"count":')
    # The same tool on a name that does not exist: an error the model can act on, still no 500.
    missing = _call(stack, member, "device_status", {"device": "no-such-device"})
    assert missing.is_error is True


def test_a_token_for_another_resource_is_refused(stack: Settings, people: dict[str, Person]) -> None:
    other = _oauth_token(
        stack, people["admin"], resource="http://127.0.0.1:9/another", scope="busymate:read", access="read"
    )
    refused = _post(stack, other, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401
    assert _challenge(refused)["resource_metadata"] == _metadata_url(stack)
    # The control: the same grant for this resource is served.
    mine = _oauth_token(stack, people["admin"], resource=_url(stack), scope="busymate:read", access="read")
    served = _post(stack, mine, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert served.status_code == 200, served.text
    assert "list_devices" in served.text


def test_a_grant_without_busymate_read_is_403_insufficient_scope(
    stack: Settings, people: dict[str, Person]
) -> None:
    token = _oauth_token(stack, people["admin"], resource=_url(stack), scope="openid", access=None)
    assert jwt.decode(token, options={"verify_signature": False})["scope"] == "openid"
    refused = _post(stack, token, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 403
    challenge = _challenge(refused)
    assert challenge["error"] == "insufficient_scope"
    assert challenge["scope"] == "busymate:read"


def test_an_expired_token_is_401_with_the_discovery_header(
    stack: Settings, world: World, people: dict[str, Person]
) -> None:
    live = _session_token(stack, world, people["admin"])
    claims = jwt.decode(live, options={"verify_signature": False})
    now = int(time.time())
    # Re-signed with the project's HS256 secret (every surface accepts it): only `exp` differs.
    fresh = tokens.sign_hs256({**claims, "iat": now - 60, "exp": now + 600}, stack.jwt_secret)
    expired = tokens.sign_hs256({**claims, "iat": now - 7200, "exp": now - 3600}, stack.jwt_secret)
    assert _post(stack, fresh, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 200
    refused = _post(stack, expired, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401
    challenge = _challenge(refused)
    assert challenge["resource_metadata"] == _metadata_url(stack)
    assert challenge["scope"] == "busymate:read busymate:write"
    # Signed out (that session only): the same token stops working here at once, as at /auth/v1.
    signed_out = httpx.post(
        f"{stack.auth_url}/logout?scope=local",
        headers={"apikey": world.anon_key, "authorization": f"Bearer {live}"},
    )
    assert signed_out.status_code == 204, signed_out.text
    gone = _post(stack, live, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert gone.status_code == 401
    assert _challenge(gone)["resource_metadata"] == _metadata_url(stack)
    # A token that is not a JWT at all, and a device's token: the same 401.
    assert _post(stack, "not-a-jwt", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401
    device = world.tokens["d1"]
    assert _post(stack, device, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401


def test_only_the_servers_own_host_names_are_served(
    stack: Settings, world: World, people: dict[str, Person]
) -> None:
    token = _session_token(stack, world, people["admin"])
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    port = urlsplit(stack.api_url).port
    assert _post(stack, token, body, host=f"localhost:{port}").status_code == 200
    rebound = _post(stack, token, body, host="attacker.example")
    assert rebound.status_code == 421
    assert httpx.get(_metadata_url(stack), headers={"host": "attacker.example"}).status_code == 421
    # Browser origins: a page of the server's own origin or a local inspector may call it; another site's
    # page may not (the SDK's DNS-rebinding check, configured, not disabled).
    assert _post(stack, token, body, origin=stack.api_url).status_code == 200
    assert _post(stack, token, body, origin="http://localhost:6274").status_code == 200
    assert _post(stack, token, body, origin="https://attacker.example").status_code == 403
    preflight = httpx.options(
        _url(stack),
        headers={"origin": "http://localhost:6274", "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 204
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    assert "www-authenticate" in preflight.headers["access-control-expose-headers"]


def test_busymate_mcp_prints_the_url_the_discovery_and_a_client_config(stack: Settings) -> None:
    run = [str(Path(sys.executable).parent / "busymate"), "mcp"]
    env = {**os.environ, **settings_env(stack), "COLUMNS": "200"}
    done = subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["url"] == _url(stack)
    assert printed["resource_metadata"] == _metadata_url(stack)
    assert printed["authorization_server"] == stack.auth_url
    assert printed["mcpServers"]["busymate"] == {"type": "http", "url": _url(stack)}
    # Every URL it prints answers: the metadata names the resource, the authorization server its issuer.
    assert httpx.get(printed["resource_metadata"]).json()["resource"] == printed["url"]
    issuer = httpx.get(printed["authorization_server_metadata"]).json()["issuer"]
    assert issuer == printed["authorization_server"]
    pretty = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert pretty.returncode == 0, pretty.stderr
    assert _url(stack) in pretty.stdout
    assert '"mcpServers"' in pretty.stdout
    assert "did not answer" not in pretty.stderr


def test_a_keyset_cursor_pages_a_list_without_repeats_or_gaps(
    stack: Settings, world: World, people: dict[str, Person]
) -> None:
    prefix = f"page-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.db_url()) as conn:  # one transaction: every row has the same created_at
        for n in range(7):
            conn.execute("insert into public.tags (name) values (%s)", (f"{prefix}-{n}",))
    keyset = Keyset("created_at")
    token = _session_token(stack, world, people["admin"])

    async def pages() -> list[list[str]]:
        found: list[list[str]] = []
        cursor: str | None = None
        async with AsyncApi(stack.api_url, world.anon_key, token) as api:
            while True:
                params = keyset.params(
                    {"select": "id,name,created_at", "name": f"like.{prefix}-*"}, cursor, 3
                )
                rows, cursor = keyset.page(await api.select("tags", params), 3)
                found.append([row["name"] for row in rows])
                if not found[1:]:  # a newer row arrives after the first page: it belongs before the cursor
                    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
                        conn.execute("insert into public.tags (name) values (%s)", (f"{prefix}-late",))
                if cursor is None:
                    return found

    try:
        got = asyncio.run(pages())
    finally:
        with psycopg.connect(stack.db_url(), autocommit=True) as conn:
            conn.execute("delete from public.tags where name like %s", (f"{prefix}-%",))
    assert [len(page) for page in got] == [3, 3, 1]
    names = [name for page in got for name in page]
    assert sorted(names) == sorted(f"{prefix}-{n}" for n in range(7))
    assert f"{prefix}-late" not in names
    with pytest.raises(ToolRefused):
        keyset.params({}, "not-a-cursor!", 3)


@pytest.mark.parametrize(
    ("requested", "access", "granted"),
    [
        ("busymate:read busymate:write", "write", "busymate:read busymate:write"),
        ("busymate:read busymate:write", "read", "busymate:read"),
        ("busymate:read busymate:write", None, "busymate:read"),  # no choice sent: least privilege
        ("busymate:read", "write", "busymate:read"),  # never more than the client asked for
        ("", "write", "busymate:read busymate:write"),
        ("", None, "busymate:read"),
        ("openid busymate:write", "write", "openid busymate:read busymate:write"),
        ("openid", "write", "openid"),  # no Busymate scope asked: none granted, no choice shown
    ],
)
def test_the_consent_choice_narrows_the_requested_scope(
    requested: str, access: str | None, granted: str
) -> None:
    assert scopes.granted(requested, access) == granted


def test_docs_mcp_names_every_tool_with_an_example() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "mcp.md").read_text()
    for tool in catalogue():
        row = re.search(rf"^\| `{tool.name}` \|.*\| `(\{{.*\}})` \|$", page, re.MULTILINE)
        assert row, f"docs/mcp.md has no row with an example for {tool.name}"


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("http://127.0.0.1:53683/callback", "http://127.0.0.1:53683"),
        ("https://app.example.com/cb?x=1", "https://app.example.com"),
        ("http://[::1]:8080/cb", "http://[::1]:8080"),
        ("com.example.app:/callback", "com.example.app:"),
        ("https://a;script-src *.example/cb", None),  # would start another CSP directive
        ("https://a,b.example/cb", None),
    ],
)
def test_the_consent_pages_form_action_names_only_plain_origins(uri: str, source: str | None) -> None:
    assert oauth_pages._csp_source(uri) == source


def test_inspect_requests_over_mcp_returns_no_captured_secret(
    stack: Settings, world: World, people: dict[str, Person]
) -> None:
    host = f"api.mcpsecret{secrets.token_hex(3)}.example"
    known = {
        name: f"{name}-{secrets.token_urlsafe(12)}" for name in ("bearer", "cookie", "query", "password")
    }
    flow: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "captured_at": datetime.now(UTC).isoformat(),
        "method": "POST",
        "scheme": "https",
        "host": host,
        "port": 443,
        "path": "/v1/login",
        "query": f"access_token={known['query']}&page=2",
        "status": 200,
        "duration_ms": 10.0,
        "request_headers": [
            ["Authorization", f"Bearer {known['bearer']}"],
            ["Cookie", f"sid={known['cookie']}"],
            ["Content-Type", "application/json"],
        ],
        "response_headers": [["Content-Type", "application/json"]],
        "request_body_b64": base64.b64encode(
            json.dumps({"username": "bob", "password": known["password"]}).encode()
        ).decode(),
    }
    stored = httpx.post(
        f"{stack.api_url}/rest/v1/rpc/ingest_entries",
        json={"batch": [flow]},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {world.tokens['d1']}"},
    )
    assert stored.status_code == 200, stored.text
    member = _session_token(stack, world, people["member"])
    # The database's own answer still carries them (the control): the redaction is what removes them.
    raw = httpx.post(
        f"{stack.api_url}/rest/v1/rpc/inspect_requests",
        json={"host": host},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {member}"},
    ).text
    assert any(secret in raw for secret in known.values()), raw
    result = _call(stack, member, "inspect_requests", {"host": host})
    text = _text(result)
    assert result.is_error is False, text
    assert flow["id"] in text
    assert "untrusted_captured_traffic" in text
    assert [name for name, secret in known.items() if secret in text] == []
