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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import ipaddress
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import SplitResult, unquote, urlencode, urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row

from busymate.gateway.auth.errors import AuthError, HttpRequest
from busymate.gateway.auth.gotrue import Answer, AuthApi
from busymate.gateway.auth.store import AuthStore, Row, digest, password_matches
from busymate.settings import Settings

CODE_TTL = 600  # seconds an authorization request and its code stay usable
COOKIE = "bm-oauth"
METADATA_PATHS = (
    "/.well-known/oauth-authorization-server/auth/v1",
    "/.well-known/oauth-authorization-server",  # below /auth/v1
)
MAX_METADATA_DOCUMENT = 64 * 1024


class OAuthError(Exception):
    """RFC 6749 §5.2: `{"error": ..., "error_description": ...}`."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class OAuthServer:
    """The authorization server's endpoints."""

    def __init__(self, settings: Settings, store: AuthStore, auth: AuthApi) -> None:
        self.settings = settings
        self.store = store
        self.auth = auth
        self.issuer = settings.auth_url
        self._csrf_key = hashlib.sha256(f"oauth-csrf:{settings.jwt_secret}".encode()).digest()

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
        routes = {
            ("/oauth/clients/register", "POST"): self.register,
            ("/oauth/authorize", "GET"): self.authorize,
            ("/oauth/authorize", "POST"): self.decide,
            ("/oauth/token", "POST"): self.token,
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

    # -- clients ---------------------------------------------------------------------------------------------

    async def register(self, request: HttpRequest) -> Answer:
        """RFC 7591 dynamic client registration."""
        body = request.json()
        uris = body.get("redirect_uris")
        if (
            not isinstance(uris, list)
            or not uris
            or not all(isinstance(u, str) and _valid_redirect(u) for u in uris)
        ):
            raise OAuthError(
                "invalid_redirect_uri",
                "redirect_uris must list absolute URIs without fragments (https, or http on a loopback host)",
            )
        method = body.get("token_endpoint_auth_method") or "client_secret_basic"
        if method not in ("none", "client_secret_post", "client_secret_basic"):
            raise OAuthError(
                "invalid_client_metadata", f"token_endpoint_auth_method {method!r} is not supported"
            )
        grants = body.get("grant_types") or ["authorization_code", "refresh_token"]
        if not isinstance(grants, list) or not set(grants) <= {"authorization_code", "refresh_token"}:
            raise OAuthError(
                "invalid_client_metadata", "grant_types may hold authorization_code and refresh_token"
            )
        response_types = body.get("response_types") or ["code"]
        if response_types != ["code"]:
            raise OAuthError("invalid_client_metadata", 'response_types must be ["code"]')
        name = body.get("client_name")
        client_id = str(uuid.uuid4())
        secret = secrets.token_urlsafe(32) if method != "none" else None
        async with self.store.pool.connection() as conn:
            await conn.execute(
                "insert into auth.oauth_clients (client_id, client_secret_hash, registration_type, "
                "client_name, client_uri, redirect_uris, grant_types, token_endpoint_auth_method) values "
                "(%(id)s, %(secret)s, 'dynamic', %(name)s, %(uri)s, %(uris)s, %(grants)s, %(method)s)",
                {
                    "id": client_id,
                    "secret": digest(secret) if secret else None,
                    "name": name if isinstance(name, str) else None,
                    "uri": body.get("client_uri") if isinstance(body.get("client_uri"), str) else None,
                    "uris": uris,
                    "grants": grants,
                    "method": method,
                },
            )
        answer: dict[str, Any] = {
            "client_id": client_id,
            "client_id_issued_at": int(time.time()),
            "redirect_uris": uris,
            "grant_types": grants,
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            "client_name": name,
        }
        if secret is not None:
            answer["client_secret"] = secret
            answer["client_secret_expires_at"] = 0
        return Answer(201, answer, {"cache-control": "no-store"})

    async def client(self, client_id: str) -> Row | None:
        """A registered client, or the metadata document `client_id` points at (fetched and remembered)."""
        async with self.store.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                "select * from auth.oauth_clients where client_id = %(id)s", {"id": client_id}
            )
            row = await cur.fetchone()
        if row is not None and row["registration_type"] != "metadata_document":
            return row
        if not _metadata_document_url(client_id):
            return None
        document = await _fetch_document(client_id)
        if document is None:
            return row  # unreachable now: what we saw last time still stands
        uris = document.get("redirect_uris")
        if document.get("client_id") != client_id or not isinstance(uris, list) or not uris:
            return None
        if not all(isinstance(u, str) and _valid_redirect(u) for u in uris):
            return None
        async with self.store.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                "insert into auth.oauth_clients (client_id, registration_type, client_name, client_uri, "
                "redirect_uris, token_endpoint_auth_method) values (%(id)s, 'metadata_document', %(name)s, "
                "%(uri)s, %(uris)s, 'none') on conflict (client_id) do update set "
                "client_name = excluded.client_name, client_uri = excluded.client_uri, "
                "redirect_uris = excluded.redirect_uris, updated_at = now() returning *",
                {
                    "id": client_id,
                    "name": document.get("client_name")
                    if isinstance(document.get("client_name"), str)
                    else None,
                    "uri": document.get("client_uri")
                    if isinstance(document.get("client_uri"), str)
                    else None,
                    "uris": uris,
                },
            )
            return await cur.fetchone()

    # -- authorize -------------------------------------------------------------------------------------------

    async def authorize(self, request: HttpRequest) -> Answer:
        """Check the request, remember it, and show the sign-in or consent page."""
        q = request.query
        client_id = q.get("client_id", "")
        client = await self.client(client_id) if client_id else None
        if client is None:
            return _page(400, "Unknown client", "<p>This application is not registered with Busymate.</p>")
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri and len(client["redirect_uris"]) == 1:
            redirect_uri = client["redirect_uris"][0]
        if redirect_uri not in client["redirect_uris"]:
            return _page(
                400,
                "Redirect URI not allowed",
                "<p>The redirect URI does not match any URI this application registered.</p>",
            )
        state = q.get("state")
        if q.get("response_type") != "code":
            return self._redirect(redirect_uri, state, error="unsupported_response_type")
        challenge = q.get("code_challenge", "")
        if q.get("code_challenge_method") != "S256" or not (43 <= len(challenge) <= 128):
            return self._redirect(
                redirect_uri,
                state,
                error="invalid_request",
                description="PKCE with code_challenge_method=S256 is required",
            )
        resource = q.get("resource") or None
        if resource is not None and not _valid_resource(resource):
            return self._redirect(
                redirect_uri,
                state,
                error="invalid_target",
                description="resource must be an absolute URI without a fragment",
            )
        authorization_id = uuid.uuid4()
        async with self.store.pool.connection() as conn:
            await conn.execute(
                "insert into auth.oauth_authorizations (id, client_id, redirect_uri, state, scope, resource, "
                "code_challenge, expires_at) values (%(id)s, %(client)s, %(uri)s, %(state)s, %(scope)s, "
                "%(res)s, %(challenge)s, now() + make_interval(secs => %(ttl)s))",
                {
                    "id": authorization_id,
                    "client": client_id,
                    "uri": redirect_uri,
                    "state": state,
                    "scope": q.get("scope", ""),
                    "res": resource,
                    "challenge": challenge,
                    "ttl": CODE_TTL,
                },
            )
        user = await self._browser_user(request)
        return self._consent_or_sign_in(
            str(authorization_id), client, resource, q.get("scope", ""), user, request
        )

    async def decide(self, request: HttpRequest) -> Answer:
        """The forms of the page: sign in, then approve or deny."""
        form = request.form()
        authorization = await self._pending(form.get("authorization_id", ""))
        if authorization is None:
            return _page(400, "This request has expired", "<p>Start again from the application.</p>")
        client = await self.client(authorization["client_id"])
        if client is None:
            return _page(400, "Unknown client", "<p>This application is no longer registered.</p>")
        action = form.get("action")
        if action == "sign_in":
            self.auth.sign_ins.take(request.client_ip)
            user = await self.store.user_by_email(form.get("email", ""))
            hashed = user["encrypted_password"] if user is not None else None
            if not await password_matches(form.get("password", ""), hashed) or user is None:
                return self._sign_in_page(
                    str(authorization["id"]), client, "Invalid login credentials", status=400
                )
            issued = await self.store.start_session(
                user, ip=request.client_ip, user_agent=request.headers.get("user-agent")
            )
            session = self.auth.access_token(issued, "password")
            answer = self._consent_page(
                str(authorization["id"]),
                client,
                authorization["resource"],
                authorization["scope"],
                user,
                str(session["access_token"]),
            )
            headers = answer.headers or {}
            headers["set-cookie"] = (
                f"{COOKIE}={session['access_token']}; Path=/auth/v1/oauth; HttpOnly; SameSite=Lax; "
                f"Max-Age={self.settings.jwt_expiry}"
            )
            answer.headers = headers
            return answer
        user = await self._browser_user(request)
        cookie = request.cookies.get(COOKIE, "")
        if user is None or not hmac.compare_digest(
            form.get("csrf", ""), self._csrf(str(authorization["id"]), cookie)
        ):
            return self._sign_in_page(str(authorization["id"]), client, "Please sign in again.", status=403)
        redirect_uri = authorization["redirect_uri"]
        if action == "deny":
            await self._finish(authorization["id"], "denied", None, None)
            return self._redirect(
                redirect_uri,
                authorization["state"],
                error="access_denied",
                description="The user denied the request",
            )
        if action != "approve":
            return _page(400, "Unknown action", "<p>Choose approve or deny.</p>")
        code = secrets.token_urlsafe(32)
        await self._finish(authorization["id"], "approved", user["id"], digest(code))
        return self._redirect(redirect_uri, authorization["state"], code=code)

    async def _pending(self, authorization_id: str) -> Row | None:
        try:
            key = uuid.UUID(authorization_id)
        except ValueError:
            return None
        async with self.store.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                "select * from auth.oauth_authorizations where id = %(id)s and status = 'pending' "
                "and expires_at > now()",
                {"id": key},
            )
            return await cur.fetchone()

    async def _finish(
        self, authorization_id: object, status: str, user_id: object, code_hash: bytes | None
    ) -> None:
        async with self.store.pool.connection() as conn:
            await conn.execute(
                "update auth.oauth_authorizations set status = %(st)s, user_id = %(u)s, code_hash = %(c)s "
                "where id = %(id)s",
                {"st": status, "u": user_id, "c": code_hash, "id": authorization_id},
            )

    async def _browser_user(self, request: HttpRequest) -> Row | None:
        """The user the browser's cookie signs in, while that session lasts."""
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        try:
            claims = self.auth.verifier.verify(token)
        except Exception:
            return None
        sub, session_id = claims.get("sub"), claims.get("session_id")
        if not isinstance(sub, str) or not isinstance(session_id, str):
            return None
        if not await self.store.session_exists(session_id):
            return None
        return await self.store.user_by_id(sub)

    def _csrf(self, authorization_id: str, cookie: str) -> str:
        mac = hmac.new(self._csrf_key, f"{authorization_id}:{cookie}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def _consent_or_sign_in(
        self,
        authorization_id: str,
        client: Row,
        resource: str | None,
        scope: str,
        user: Row | None,
        request: HttpRequest,
    ) -> Answer:
        if user is None:
            return self._sign_in_page(authorization_id, client, None)
        return self._consent_page(
            authorization_id, client, resource, scope, user, request.cookies.get(COOKIE, "")
        )

    def _sign_in_page(
        self, authorization_id: str, client: Row, error: str | None, status: int = 200
    ) -> Answer:
        name = html.escape(client["client_name"] or client["client_id"])
        notice = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        return _page(
            status,
            "Sign in to Busymate",
            f"""<p><strong>{name}</strong> wants to use your Busymate account.</p>{notice}
<form method="post" action="{self.issuer}/oauth/authorize">
<input type="hidden" name="authorization_id" value="{authorization_id}">
<input type="hidden" name="action" value="sign_in">
<label>Email <input type="email" name="email" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>""",
        )

    def _consent_page(
        self, authorization_id: str, client: Row, resource: str | None, scope: str, user: Row, cookie: str
    ) -> Answer:
        name = html.escape(client["client_name"] or client["client_id"])
        target = html.escape(resource or "your Busymate data")
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in scope.split() if s)
        csrf = self._csrf(authorization_id, cookie)
        return _page(
            200,
            f"Allow {name}?",
            f"""<p>Signed in as <strong>{html.escape(user["email"] or "")}</strong>.</p>
<p><strong>{name}</strong> asks to act as you on <code>{target}</code>, with what your role allows.</p>
{f"<ul>{scopes}</ul>" if scopes else ""}
<p>Redirects to <code>{html.escape(", ".join(client["redirect_uris"]))}</code>.</p>
<form method="post" action="{self.issuer}/oauth/authorize">
<input type="hidden" name="authorization_id" value="{authorization_id}">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>""",
        )

    def _redirect(
        self,
        redirect_uri: str,
        state: str | None,
        *,
        code: str | None = None,
        error: str | None = None,
        description: str | None = None,
    ) -> Answer:
        params = {"code": code} if code else {"error": error or "server_error"}
        if description:
            params["error_description"] = description
        if state is not None:
            params["state"] = state
        params["iss"] = self.issuer
        separator = "&" if urlsplit(redirect_uri).query else "?"
        location = f"{redirect_uri}{separator}{urlencode(params)}"
        return Answer(302, None, {"location": location, "cache-control": "no-store"})

    # -- token -----------------------------------------------------------------------------------------------

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
        client = await self.client(client_id) if client_id else None
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
            user, ip="", user_agent=None, oauth_client_id=client["client_id"], resource=grant["resource"]
        )
        answer = self._tokens(issued)
        if grant["scope"]:
            assert isinstance(answer.body, dict)
            answer.body["scope"] = grant["scope"]
        return answer

    def _tokens(self, issued: Any) -> Answer:
        session = self.auth.access_token(issued, "oauth")
        return Answer(
            200,
            {
                "access_token": session["access_token"],
                "token_type": "bearer",
                "expires_in": session["expires_in"],
                "refresh_token": session["refresh_token"],
            },
            {"cache-control": "no-store", "pragma": "no-cache"},
        )


def _page(status: int, title: str, content: str) -> Answer:
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">\
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.75rem 0}}input{{display:block;width:100%;padding:.4rem}}
button{{margin:.75rem .5rem 0 0;padding:.5rem 1rem}}.error{{color:#b00020}}</style></head>
<body><h1>{html.escape(title)}</h1>
{content}
</body></html>"""
    return Answer(
        status,
        None,
        {
            "cache-control": "no-store",
            "x-frame-options": "DENY",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        },
        raw=body.encode(),
        content_type="text/html; charset=utf-8",
    )


# RFC 3986's characters: unreserved, reserved and "%". A backslash, a space, a quote or anything outside
# ASCII is read differently by different parsers (WHATWG browsers read "\\" as "/"): such a URI is refused.
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_LOOPBACK_NAMES = ("localhost",)


def _loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or `localhost`, compared exactly as parsed (RFC 8252 §7.3 and §8.3)."""
    if host is None:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _strict_url(uri: str) -> SplitResult | None:
    """`uri` split, when it is an absolute URI with no characters parsers disagree on, no userinfo and no
    fragment, whose authority is exactly host[:port] as parsed; None otherwise."""
    if len(uri) > 2000 or not _URI_CHARS.fullmatch(uri) or "#" in uri:
        return None
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:  # a bad port or IPv6 literal
        return None
    if not _SCHEME.fullmatch(parts.scheme) or "@" in parts.netloc:
        return None
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    if parts.netloc.lower() != (f"{shown}:{port}" if port is not None else shown):
        return None
    return parts


def _valid_redirect(uri: str) -> bool:
    """A redirect URI a client may register (OAuth 2.1 §2.3.1, RFC 8252 §7): https with a host, http on a
    loopback host, or a private-use scheme for a native app."""
    parts = _strict_url(uri)
    if parts is None:
        return False
    scheme = parts.scheme.lower()
    if scheme == "http":
        return _loopback(parts.hostname)
    if scheme == "https":
        return bool(parts.hostname)
    # A private-use scheme (RFC 8252 §7.1), reverse domain, e.g. com.example.app:/callback: no authority.
    return "." in scheme and not parts.netloc


def _valid_resource(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.fragment


def _metadata_document_url(client_id: str) -> bool:
    parts = _strict_url(client_id)
    if parts is None or parts.path in ("", "/"):
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname))


async def _fetch_document(url: str) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as http:
            response = await http.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError:
        return None
    if response.status_code != 200 or len(response.content) > MAX_METADATA_DOCUMENT:
        return None
    try:
        document = response.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
