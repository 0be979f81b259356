"""/functions/v1/mcp: Busymate's MCP server (docs/mcp.md), on the official `mcp` SDK (MCPServer, streamable
HTTP, stateless with JSON answers), a protected resource of the stack's OAuth 2.1 authorization server.

- `GET /.well-known/oauth-protected-resource/functions/v1/mcp` (the host forwards it here): RFC 9728
  metadata naming this resource, the issuer (`/auth/v1`), the scopes `busymate:read` and `busymate:write`.
- Without a valid token: 401 with `WWW-Authenticate: Bearer ..., resource_metadata="...", scope="..."`;
  a token issued for another resource (RFC 8707 `aud`) or expired is the same 401. A token without
  `busymate:read` is 403 insufficient_scope, and so is a call of a write tool under a read-only grant
  (the client may ask the user for more). The dashboard's session token is accepted as is.
- Tools are BusyBro's registry (functions/busybro/tools) plus the MCP-only `EXTRA_TOOLS`, run under the
  caller's token (`ctx.api`): RLS and the tools' own capability checks decide, the server holds nothing.

`VERIFY_JWT = False`: the function answers the OAuth challenges itself (the host's own 401 has no
discovery header). It holds no key: tokens are checked by the auth server (auth.py).
"""

from __future__ import annotations

import orjson

from busymate import scopes
from busymate.api_core import ApiRefused, ApiUnreachable
from busymate.functions.mcp_server import bridge, tools
from busymate.functions.mcp_server.auth import (
    CURRENT,
    Caller,
    Verifier,
    challenge,
    insufficient_scope,
    metadata,
)
from busymate.functions.mcp_server.site import METADATA_PREFIX, site_of
from busymate.functions_api import FunctionContext, FunctionRequest, FunctionResponse

VERIFY_JWT = False
NEEDS = ("env",)
ENV = ("MCP_ALLOWED_HOSTS",)

_issuer: str | None = None
# A browser client (the MCP Inspector) reads the challenge and the protocol headers; the host adds the origin.
CORS = {
    "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
    "access-control-allow-headers": "authorization, content-type, accept, mcp-protocol-version, "
    "mcp-session-id, last-event-id",
    "access-control-expose-headers": "www-authenticate, mcp-session-id, mcp-protocol-version",
    "access-control-max-age": "86400",
}


def _refuse(status: int, error: str, message: str) -> FunctionResponse:
    return FunctionResponse.json(status, {"error": error, "message": message})


async def issuer(ctx: FunctionContext) -> str:
    """The authorization server's issuer, from its RFC 8414 metadata (read once)."""
    global _issuer
    if _issuer is None:
        found = await ctx.anon.request("GET", "/.well-known/oauth-authorization-server/auth/v1")
        _issuer = str(found["issuer"]) if isinstance(found, dict) and found.get("issuer") else None
        if _issuer is None:
            raise ApiUnreachable("the authorization server published no issuer")
    return _issuer


def _write_calls(body: bytes) -> list[str]:
    """The write tools a JSON-RPC body calls (a batch counts every message)."""
    try:
        parsed = orjson.loads(body or b"null")
    except orjson.JSONDecodeError:
        return []
    messages = parsed if isinstance(parsed, list) else [parsed]
    names = [
        str(m.get("params", {}).get("name"))
        for m in messages
        if isinstance(m, dict) and m.get("method") == "tools/call" and isinstance(m.get("params"), dict)
    ]
    return [name for name in names if tools.writes(name)]


async def handle(request: FunctionRequest, ctx: FunctionContext) -> FunctionResponse:
    """Serve the MCP endpoint and its protected-resource metadata."""
    try:
        site = site_of(request, await issuer(ctx), ctx.env)
    except (ApiRefused, ApiUnreachable):
        return _refuse(503, "auth_unavailable", "the authorization server did not answer; try again shortly")
    if site is None:
        return _refuse(
            421,
            "misdirected_request",
            "this host name is not one the MCP server answers: add it to MCP_ALLOWED_HOSTS",
        )
    if request.method == "OPTIONS":
        return FunctionResponse(204, dict(CORS))
    if request.path == METADATA_PREFIX:
        if request.method not in ("GET", "HEAD"):
            return _refuse(405, "method_not_allowed", "read the metadata with GET")
        return metadata(site)
    if request.path not in ("", "/"):
        return _refuse(404, "not_found", "the MCP endpoint is /functions/v1/mcp")
    caller = Caller(ctx, site)
    reset = CURRENT.set(caller)
    try:
        writes = _write_calls(request.body) if request.method == "POST" else []
        token = request.bearer()
        if writes and token is not None:
            verified = await Verifier().verify_token(token)
            # Only a token this server would serve steps up; any other gets the SDK's 401 below.
            if (
                verified is not None
                and verified.resource == site.resource
                and scopes.WRITE not in verified.scopes
            ):
                return insufficient_scope(
                    site, f"{scopes.READ} {scopes.WRITE}", f"{writes[0]} needs {scopes.WRITE}"
                )
        both = f"{scopes.READ} {scopes.WRITE}"
        answer = await bridge.serve(
            request, site, {401: challenge(site, both), 403: challenge(site, scopes.READ)}
        )
        answer.headers.update(CORS)
        return answer
    except ApiUnreachable:
        return _refuse(503, "api_unreachable", "the Busymate API did not answer; try again shortly")
    finally:
        CURRENT.reset(reset)
