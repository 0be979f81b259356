"""The OAuth 2.1 authorization server end to end: the official `mcp` SDK's client auth against an MCP server
protected by tokens from /auth/v1, with the consent page driven as a browser would (plain HTTP forms).

The protected resource verifies tokens the way an independent resource server does: the JWKS, the issuer and
`aud` equal to its own URL (RFC 8707). A token issued for another resource is refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import jwt
import psycopg
import pytest
import uvicorn
from mcp.client import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyHttpUrl, AnyUrl

from busymate import tokens
from busymate.settings import Settings
from busymate.stack.postgres import free_port
from tests.world import World

REDIRECT = "http://127.0.0.1:53682/callback"  # never listened on: the code is read from the Location header


@dataclass
class Person:
    """A user with a password, a member of w1."""

    id: str
    email: str
    password: str


@pytest.fixture(scope="module")
def person(stack: Settings, world: World) -> Iterator[Person]:
    email = f"mcp-{uuid.uuid4().hex[:8]}@example.com"
    password = secrets.token_urlsafe(12)
    service = tokens.service_role_key(stack.jwt_secret)
    headers = {"apikey": service, "authorization": f"Bearer {service}"}
    created = httpx.post(
        f"{stack.auth_url}/admin/users",
        json={"email": email, "password": password, "email_confirm": True},
        headers=headers,
    ).json()
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        conn.execute("update public.profiles set role = 'member' where id = %(u)s", {"u": created["id"]})
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id) values (%(w)s, %(u)s)",
            {"w": world.ids["w1"], "u": created["id"]},
        )
    yield Person(created["id"], email, password)
    httpx.delete(f"{stack.auth_url}/admin/users/{created['id']}", headers=headers)


class Verifier(TokenVerifier):
    """An independent resource server's check: signature by the JWKS, issuer, expiry, and aud = this
    server."""

    def __init__(self, issuer: str, resource: str) -> None:
        self.issuer = issuer
        self.resource = resource
        self.jwks = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json")

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=["ES256"], audience=self.resource, issuer=self.issuer
            )
        except jwt.PyJWTError:
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=["mcp"],
            expires_at=int(claims["exp"]),
            resource=self.resource,
            subject=str(claims["sub"]),
            claims=claims,
        )


@dataclass
class Resource:
    url: str
    server: uvicorn.Server


@pytest.fixture(scope="module")
def resource(stack: Settings) -> Iterator[Resource]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    mcp = MCPServer(
        "busymate-test-resource",
        token_verifier=Verifier(stack.auth_url, url),
        auth=AuthSettings(
            issuer_url=AnyHttpUrl(stack.auth_url),
            resource_server_url=AnyHttpUrl(url),
            required_scopes=["mcp"],
            validate_token_resource=True,
        ),
    )

    @mcp.tool()
    def echo(text: str) -> str:
        return text

    app = mcp.streamable_http_app(streamable_http_path="/mcp")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield Resource(url, server)
    server.should_exit = True
    thread.join(timeout=5)


class Storage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} in the page:\n{page}"
    return found[1]


async def consent(authorize_url: str, person: Person, *, approve: bool = True) -> str:
    """Be the browser: open the page, sign in, approve (or deny); the redirect's Location."""
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        page = await browser.get(authorize_url)
        assert page.status_code == 200, page.text
        assert "text/html" in page.headers["content-type"]
        assert "Sign in to Busymate" in page.text
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
        assert person.email in signed_in.text
        assert "Approve" in signed_in.text
        decided = await browser.post(
            action[1],
            data={
                "authorization_id": authorization_id,
                "csrf": _hidden(signed_in.text, "csrf"),
                "action": "approve" if approve else "deny",
            },
        )
        assert decided.status_code == 302, decided.text
        return decided.headers["location"]


def test_the_mcp_sdk_completes_the_flow_and_the_token_is_a_busymate_token(
    stack: Settings, world: World, person: Person, resource: Resource
) -> None:
    storage = Storage()
    seen: list[str] = []
    result: dict[str, AuthorizationCodeResult] = {}

    async def redirect_handler(url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["resource"] == [resource.url]
        location = await consent(url, person)
        answer = parse_qs(urlsplit(location).query)
        assert location.startswith(REDIRECT + "?")
        assert answer["iss"] == [stack.auth_url]
        result["code"] = AuthorizationCodeResult(
            code=answer["code"][0], state=answer["state"][0], iss=stack.auth_url
        )

    async def callback_handler() -> AuthorizationCodeResult:
        return result["code"]

    async def log(request: httpx2.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    provider = OAuthClientProvider(
        server_url=resource.url,
        client_metadata=OAuthClientMetadata(
            client_name="Busymate MCP test client",
            redirect_uris=[AnyUrl(REDIRECT)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def run() -> str:
        async with (
            httpx2.AsyncClient(auth=provider, event_hooks={"request": [log]}, timeout=30) as http,
            Client(streamable_http_client(resource.url, http_client=http)) as client,
        ):
            answer = await client.call_tool("echo", {"text": "hello through OAuth"})
            return str(answer)

    assert "hello through OAuth" in asyncio.run(run())
    assert "POST /auth/v1/oauth/clients/register" in seen
    assert "POST /auth/v1/oauth/token" in seen
    assert storage.tokens is not None
    assert storage.client is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == resource.url
    assert claims["sub"] == person.id
    assert claims["role"] == "authenticated"
    assert claims["client_id"] == storage.client.client_id
    # The same token is an ordinary Busymate token: RLS shows the member w1's devices and nothing of w2.
    rows = httpx.get(
        f"{stack.api_url}/rest/v1/devices?select=uuid,workspace_id",
        headers={"apikey": world.anon_key, "authorization": f"Bearer {storage.tokens.access_token}"},
    ).json()
    assert rows
    assert {r["workspace_id"] for r in rows} == {world.ids["w1"]}
    # The refresh token rotates and keeps the audience; a refresh may not move it to another resource.
    assert storage.tokens.refresh_token
    refreshed = httpx.post(
        f"{stack.auth_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": storage.tokens.refresh_token,
            "client_id": storage.client.client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert (
        jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})["aud"]
        == resource.url
    )
    widened = httpx.post(
        f"{stack.auth_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed.json()["refresh_token"],
            "client_id": storage.client.client_id,
            "resource": "http://127.0.0.1:9/elsewhere",
        },
    )
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_target"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def _register(stack: Settings, **extra: object) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack.auth_url}/oauth/clients/register",
        json={
            "client_name": "manual",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            **extra,
        },
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _authorize_url(stack: Settings, client_id: str, challenge: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "state": "s-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return str(httpx.URL(f"{stack.auth_url}/oauth/authorize", params=params))


def _code(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


def test_a_token_for_another_resource_is_refused_by_the_resource(
    stack: Settings, person: Person, resource: Resource
) -> None:
    client = _register(stack)
    verifier, challenge = _pkce()
    other = "http://127.0.0.1:9/another-resource"
    location = asyncio.run(
        consent(_authorize_url(stack, client["client_id"], challenge, resource=other), person)
    )
    issued = httpx.post(
        f"{stack.auth_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": _code(location),
            "redirect_uri": REDIRECT,
            "client_id": client["client_id"],
            "code_verifier": verifier,
            "resource": other,
        },
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == other
    refused = httpx.post(
        resource.url,
        headers={
            "authorization": f"Bearer {token}",
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert refused.status_code == 401
    assert "invalid_token" in refused.headers["www-authenticate"]


def test_the_authorization_server_refuses_what_oauth_2_1_forbids(stack: Settings, person: Person) -> None:
    client = _register(stack)
    verifier, challenge = _pkce()
    # A redirect URI that is not registered exactly: an error page, never a redirect.
    wrong = httpx.get(
        _authorize_url(stack, client["client_id"], challenge).replace("callback", "callback%2F"),
        follow_redirects=False,
    )
    assert wrong.status_code == 400
    assert "location" not in wrong.headers
    unknown = httpx.get(_authorize_url(stack, "no-such-client", challenge), follow_redirects=False)
    assert unknown.status_code == 400
    assert "location" not in unknown.headers
    # PKCE is required, and only S256.
    plain = httpx.get(
        _authorize_url(stack, client["client_id"], verifier, code_challenge_method="plain"),
        follow_redirects=False,
    )
    assert plain.status_code == 302
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]
    # Deny: access_denied back to the client.
    denied = asyncio.run(
        consent(_authorize_url(stack, client["client_id"], challenge), person, approve=False)
    )
    assert parse_qs(urlsplit(denied).query)["error"] == ["access_denied"]
    # A code: the wrong verifier fails, and a code works once.
    code = _code(asyncio.run(consent(_authorize_url(stack, client["client_id"], challenge), person)))
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client["client_id"],
    }
    bad = httpx.post(f"{stack.auth_url}/oauth/token", data={**form, "code_verifier": _pkce()[0]})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"
    code = _code(asyncio.run(consent(_authorize_url(stack, client["client_id"], challenge), person)))
    good = httpx.post(f"{stack.auth_url}/oauth/token", data={**form, "code": code, "code_verifier": verifier})
    assert good.status_code == 200, good.text
    assert good.json()["token_type"].lower() == "bearer"
    assert good.json()["expires_in"] > 0
    again = httpx.post(
        f"{stack.auth_url}/oauth/token", data={**form, "code": code, "code_verifier": verifier}
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # Approving without the page's CSRF token (another site posting the form) is refused.
    page = httpx.get(_authorize_url(stack, client["client_id"], challenge))
    forged = httpx.post(
        f"{stack.auth_url}/oauth/authorize",
        data={"authorization_id": _hidden(page.text, "authorization_id"), "action": "approve", "csrf": "x"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "location" not in forged.headers
    # A confidential client must authenticate at the token endpoint.
    confidential = _register(stack, token_endpoint_auth_method="client_secret_post")
    assert confidential["client_secret"]
    no_secret = httpx.post(
        f"{stack.auth_url}/oauth/token",
        data={**form, "client_id": confidential["client_id"], "code_verifier": verifier},
    )
    assert no_secret.status_code == 401
    assert no_secret.json()["error"] == "invalid_client"
    metadata = httpx.get(f"{stack.api_url}/.well-known/oauth-authorization-server/auth/v1").json()
    assert metadata["issuer"] == stack.auth_url
    assert metadata["code_challenge_methods_supported"] == ["S256"]


@contextmanager
def client_document(document: Callable[[str], dict[str, object]]) -> Iterator[str]:
    """A client ID metadata document served on a loopback port while the block runs: its URL.
    `document(url)` builds the JSON (a document names its own URL as client_id)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/oauth/client.json"
    body = json.dumps(document(url)).encode()

    class Document(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", port), Document)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield url
    finally:
        server.shutdown()


def test_a_client_id_metadata_document_identifies_a_client(stack: Settings, person: Person) -> None:
    document = {"client_name": "Metadata Client", "redirect_uris": [REDIRECT]}
    with client_document(lambda url: {"client_id": url, **document}) as document_url:
        verifier, challenge = _pkce()
        page = httpx.get(_authorize_url(stack, document_url, challenge))
        assert page.status_code == 200
        assert "Metadata Client" in page.text
        location = asyncio.run(consent(_authorize_url(stack, document_url, challenge), person))
        issued = httpx.post(
            f"{stack.auth_url}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": _code(location),
                "redirect_uri": REDIRECT,
                "client_id": document_url,
                "code_verifier": verifier,
            },
        )
        assert issued.status_code == 200, issued.text
        assert (
            jwt.decode(issued.json()["access_token"], options={"verify_signature": False})["client_id"]
            == document_url
        )
