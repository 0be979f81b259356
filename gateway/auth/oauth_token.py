"""The OAuth token endpoint (/oauth/token): client authentication (none, client_secret_post or _basic), the
authorization_code grant with PKCE (S256) and the refresh_token grant (rotating, with the same reuse detection
as /auth/v1); RFC 8707's `resource` is the grant's and a refresh may not widen it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import unquote

from psycopg.rows import dict_row

from busymate.gateway.auth.answer import Answer
from busymate.gateway.auth.errors import AuthError, HttpRequest, OAuthError
from busymate.gateway.auth.gotrue import AuthApi
from busymate.gateway.auth.oauth_clients import OAuthClients
from busymate.gateway.auth.refresh import Issued, digest
from busymate.gateway.auth.store import AuthStore
from busymate.gateway.auth.users import Row


class OAuthTokens:
    """POST /oauth/token."""

    def __init__(self, store: AuthStore, auth: AuthApi, clients: OAuthClients) -> None:
        self.store = store
        self.auth = auth
        self.clients = clients

    async def token(self, request: HttpRequest) -> Answer:
        """The token endpoint: authorization_code (with PKCE) and refresh_token."""
        content_type = request.headers.get("content-type", "")
        params = (
            {k: str(v) for k, v in request.json().items()}
            if content_type.startswith("application/json")
            else request.form()
        )
        client = await self._authenticate_client(request, params)
        grant = params.get("grant_type")
        if grant == "authorization_code":
            return await self._code_grant(client, params)
        if grant == "refresh_token":
            token = params.get("refresh_token", "")
            if not token:
                raise OAuthError("invalid_request", "refresh_token is required")
            try:
                issued = await self.store.refresh(token, oauth_client_id=client["client_id"])
            except AuthError as exc:
                raise OAuthError("invalid_grant", exc.msg) from exc
            wanted = params.get("resource")
            if wanted and wanted != issued.resource:
                raise OAuthError("invalid_target", "a refresh cannot change the resource the grant was for")
            return self._tokens(issued)
        raise OAuthError("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")

    async def _authenticate_client(self, request: HttpRequest, params: dict[str, str]) -> Row:
        client_id = params.get("client_id", "")
        secret = params.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                raw = base64.b64decode(basic[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError) as exc:
                raise OAuthError("invalid_client", "malformed Basic credentials", 401) from exc
            basic_id, _, basic_secret = raw.partition(":")
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        client = await self.clients.client(client_id) if client_id else None
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if client["client_secret_hash"] is not None and (
            not secret or not hmac.compare_digest(digest(secret), bytes(client["client_secret_hash"]))
        ):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    async def _code_grant(self, client: Row, params: dict[str, str]) -> Answer:
        code = params.get("code", "")
        verifier = params.get("code_verifier", "")
        if not code or not verifier:
            raise OAuthError("invalid_request", "code and code_verifier are required")
        async with self.store.pool.connection() as conn, conn.transaction():
            cur = await conn.cursor(row_factory=dict_row).execute(
                "update auth.oauth_authorizations set status = 'used' where code_hash = %(c)s "
                "and status = 'approved' returning *, expires_at > now() as live",
                {"c": digest(code)},
            )
            grant = await cur.fetchone()
        if grant is None or not grant["live"] or grant["client_id"] != client["client_id"]:
            raise OAuthError("invalid_grant", "the authorization code is invalid, expired or already used")
        if params.get("redirect_uri", grant["redirect_uri"]) != grant["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if not hmac.compare_digest(expected, grant["code_challenge"]):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        wanted = params.get("resource") or grant["resource"]
        if wanted != grant["resource"]:
            raise OAuthError("invalid_target", "resource differs from the one the user approved")
        user = await self.store.user_by_id(str(grant["user_id"]))
        if user is None:
            raise OAuthError("invalid_grant", "the user no longer exists")
        issued = await self.store.start_session(
            user,
            ip="",
            user_agent=None,
            oauth_client_id=client["client_id"],
            resource=grant["resource"],
            scope=grant["scope"] or None,
        )
        return self._tokens(issued)

    def _tokens(self, issued: Issued) -> Answer:
        session = self.auth.access_token(issued, "oauth")
        body = {
            "access_token": session["access_token"],
            "token_type": "bearer",
            "expires_in": session["expires_in"],
            "refresh_token": session["refresh_token"],
        }
        if issued.scope:
            body["scope"] = issued.scope  # what the user granted (RFC 6749 §5.1), kept by refreshes
        return Answer(200, body, {"cache-control": "no-store", "pragma": "no-cache"})
