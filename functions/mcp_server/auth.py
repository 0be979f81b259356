"""The caller of one MCP request and how their token is checked.

The function holds no key. A token is valid when the auth server says so (`GET /auth/v1/user` under it, as
`auth.getUser(token)`: signature, expiry, a live session, an existing user); its claims (read from the token
the auth server just accepted) then give the issuer, the audience and the scopes. The audience is reported
to the SDK as `AccessToken.resource`, and the SDK's own resource check (`validate_token_resource`) refuses a
token issued for another resource. A session token of the dashboard or the CLI (`aud` = `authenticated`,
no `scope`) is accepted as issued for this server: one token for REST, Realtime and MCP.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl

from busymate import scopes
from busymate.api_core import ApiRefused
from busymate.functions.busybro.core import Identity
from busymate.functions.busybro.identity import load_identity
from busymate.functions.mcp_server.site import Site
from busymate.functions_api import FunctionContext, FunctionResponse

SESSION_AUDIENCE = "authenticated"


@dataclass
class Caller:
    """One request's context: the function's clients, the site, and what was learnt about the token."""

    ctx: FunctionContext
    site: Site
    verified: dict[str, AccessToken | None] = field(default_factory=dict)
    user: dict[str, Any] | None = None
    identity: Identity | None = None

    async def who(self) -> Identity:
        """The caller as the database knows them (profile and `my_capabilities`, under their own token)."""
        if self.identity is None:
            self.identity = await load_identity(self.ctx.api, self.user or {})
        return self.identity

    def scopes(self) -> frozenset[str]:
        """The scopes of the request's verified token (none before it is verified)."""
        token = next((t for t in self.verified.values() if t is not None), None)
        return frozenset(token.scopes) if token is not None else frozenset()


CURRENT: ContextVar[Caller] = ContextVar("busymate_mcp_caller")


def current() -> Caller:
    """The caller of the request being served (set by the bridge; handlers run in tasks that copy it)."""
    return CURRENT.get()


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, not checked: only read after the auth server accepted the same token."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


class Verifier(TokenVerifier):
    """The SDK's token check, answered by the auth server and the token's claims (see the module)."""

    async def verify_token(self, token: str) -> AccessToken | None:
        """An AccessToken for a valid user token (its `resource` is its audience), or None."""
        caller = current()
        if token not in caller.verified:
            caller.verified[token] = await self._verify(caller, token)
        return caller.verified[token]

    async def _verify(self, caller: Caller, token: str) -> AccessToken | None:
        claims = unverified_claims(token)
        if claims is None:
            return None
        try:
            user = await caller.ctx.api.request("GET", "/auth/v1/user", token=token)
        except ApiRefused:
            return None
        if not isinstance(user, dict) or user.get("role") != "authenticated" or not user.get("id"):
            return None
        if claims.get("sub") != user["id"] or claims.get("iss") != caller.site.issuer:
            return None
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= time.time():
            return None
        caller.user = user
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or "busymate-session"),
            scopes=sorted(scopes.of_claims(claims)),
            expires_at=exp,
            resource=_resource(claims.get("aud"), caller.site),
            subject=str(claims["sub"]),
            claims=claims,
        )


def _resource(aud: object, site: Site) -> str | None:
    """What the token was issued for: this server for a session token (`authenticated`), else its `aud`."""
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if SESSION_AUDIENCE in audiences or site.resource in audiences:
        return site.resource
    return str(audiences[0]) if audiences else None


def metadata(site: Site) -> FunctionResponse:
    """RFC 9728 protected-resource metadata: this resource, its authorization server, its scopes."""
    document = ProtectedResourceMetadata(
        resource=AnyHttpUrl(site.resource),
        authorization_servers=[AnyHttpUrl(site.issuer)],
        scopes_supported=list(scopes.ALL),
        bearer_methods_supported=["header"],
        resource_name="Busymate",
    )
    return FunctionResponse(
        200,
        {"content-type": "application/json", "cache-control": "public, max-age=300"},
        document.model_dump_json(exclude_none=True).encode(),
    )


def challenge(site: Site, wanted: str) -> Callable[[str], str]:
    """A rewrite of the SDK's `WWW-Authenticate` that adds `scope` (what to ask the authorization server for,
    MCP's scope selection), keeping its error and `resource_metadata`."""

    def rewrite(header: str) -> str:
        if 'resource_metadata="' not in header:
            header = f'{header}, resource_metadata="{site.metadata_url}"'
        return f'{header}, scope="{wanted}"'

    return rewrite


def insufficient_scope(site: Site, needed: str, description: str) -> FunctionResponse:
    """403 insufficient_scope (RFC 6750 §3.1) with the scopes the call needs, for the client's step-up."""
    header = (
        f'Bearer error="insufficient_scope", error_description="{description}", '
        f'resource_metadata="{site.metadata_url}", scope="{needed}"'
    )
    return FunctionResponse.json(
        403,
        {"error": "insufficient_scope", "error_description": description},
        {"www-authenticate": header},
    )
