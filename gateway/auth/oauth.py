"""The OAuth 2.1 authorization server for MCP clients, on /auth/v1 (docs/auth.md).

- RFC 8414 metadata at /.well-known/oauth-authorization-server/auth/v1 (and below /auth/v1).
- Authorization code with PKCE, S256 only; redirect URIs match exactly, character for character.
- A consent page in plain HTML: sign in with email and password (a cookie keeps that browser signed in), then
  approve or deny; the form carries a token bound to the cookie, so another site cannot approve for the user.
- Token endpoint: authorization_code and refresh_token (rotating, with the same reuse detection as /auth/v1).
- Clients: dynamic registration (RFC 7591) at /oauth/clients/register, or a client ID metadata document: a
  client_id that is an https URL (http on a loopback host, for local development) whose JSON names itself.
- RFC 8707: `resource` is kept with the grant and becomes the access token's `aud`; a refresh may not
  widen it.

Tokens are ordinary Busymate access tokens (role authenticated, sub, session_id), so RLS applies unchanged.
This module routes and answers the metadata; the clients are oauth_clients.py's (URIs checked in
oauth_uris.py), the authorization endpoint oauth_consent.py's (pages in oauth_pages.py), the token endpoint
oauth_token.py's.
"""

from __future__ import annotations

import psycopg

from busymate.gateway.auth.answer import Answer, Handler
from busymate.gateway.auth.errors import AuthError, HttpRequest, OAuthError
from busymate.gateway.auth.gotrue import AuthApi
from busymate.gateway.auth.oauth_clients import OAuthClients
from busymate.gateway.auth.oauth_consent import OAuthConsent
from busymate.gateway.auth.oauth_token import OAuthTokens
from busymate.gateway.auth.store import AuthStore
from busymate.settings import Settings

METADATA_PATHS = (
    "/.well-known/oauth-authorization-server/auth/v1",
    "/.well-known/oauth-authorization-server",  # below /auth/v1
)


class OAuthServer:
    """The authorization server's endpoints: this module routes and answers the metadata."""

    def __init__(self, settings: Settings, store: AuthStore, auth: AuthApi) -> None:
        self.settings = settings
        self.store = store
        self.auth = auth
        self.issuer = settings.auth_url
        self.clients = OAuthClients(store)
        self.consent = OAuthConsent(settings, store, auth, self.clients)
        self.tokens = OAuthTokens(store, auth, self.clients)

    def handles(self, request: HttpRequest) -> bool:
        """Whether the request is for this server (these paths need no API key)."""
        return request.path in METADATA_PATHS or request.path.startswith("/oauth/")

    async def handle(self, request: HttpRequest) -> Answer:
        """Route one request."""
        path = request.path.rstrip("/")
        try:
            if path in METADATA_PATHS and request.method == "GET":
                return Answer(200, self.metadata(), {"cache-control": "public, max-age=600"})
            try:
                answer = await self._route(path, request)
            except psycopg.OperationalError as exc:
                raise self.auth.database_lost(exc) from exc
            if answer is not None:
                return answer
        except OAuthError as exc:
            return Answer(
                exc.status,
                {"error": exc.error, "error_description": exc.description},
                {"cache-control": "no-store"},
            )
        except AuthError as exc:
            error = "temporarily_unavailable" if exc.status == 503 else exc.error_code  # RFC 6749 §4.1.2.1
            return Answer(exc.status, {"error": error, "error_description": exc.msg}, dict(exc.headers))
        return Answer(404, {"error": "not_found", "error_description": f"{request.method} {request.path}"})

    async def _route(self, path: str, request: HttpRequest) -> Answer | None:
        routes: dict[tuple[str, str], Handler] = {
            ("/oauth/clients/register", "POST"): self.clients.register,
            ("/oauth/authorize", "GET"): self.consent.authorize,
            ("/oauth/authorize", "POST"): self.consent.decide,
            ("/oauth/token", "POST"): self.tokens.token,
        }
        handler = routes.get((path, request.method))
        if handler is None:
            return None
        self.auth.database_check()
        return await handler(request)

    def metadata(self) -> dict[str, object]:
        """RFC 8414 authorization server metadata."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/oauth/authorize",
            "token_endpoint": f"{self.issuer}/oauth/token",
            "registration_endpoint": f"{self.issuer}/oauth/clients/register",
            "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "client_id_metadata_document_supported": True,
            "authorization_response_iss_parameter_supported": True,
            "resource_indicators_supported": True,
        }
