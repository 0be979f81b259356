"""The OAuth authorization endpoint (/oauth/authorize): check the request and remember it, then sign the
browser's user in (a cookie keeps that browser signed in) and let them approve or deny; the form carries a
token bound to the cookie, so another site cannot approve for the user. Approval issues a one-time code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid

from psycopg.rows import dict_row

from busymate.gateway.auth import oauth_pages, oauth_uris
from busymate.gateway.auth.answer import Answer
from busymate.gateway.auth.errors import HttpRequest
from busymate.gateway.auth.gotrue import AuthApi
from busymate.gateway.auth.oauth_clients import OAuthClients
from busymate.gateway.auth.passwords import password_matches
from busymate.gateway.auth.refresh import digest
from busymate.gateway.auth.store import AuthStore
from busymate.gateway.auth.users import Row
from busymate.scopes import granted
from busymate.settings import Settings

CODE_TTL = 600  # seconds an authorization request and its code stay usable
COOKIE = "bm-oauth"


class OAuthConsent:
    """GET /oauth/authorize shows the page; POST takes its forms (sign in, approve, deny)."""

    def __init__(self, settings: Settings, store: AuthStore, auth: AuthApi, clients: OAuthClients) -> None:
        self.settings = settings
        self.store = store
        self.auth = auth
        self.clients = clients
        self.issuer = settings.auth_url
        self._csrf_key = hashlib.sha256(f"oauth-csrf:{settings.jwt_secret}".encode()).digest()

    async def authorize(self, request: HttpRequest) -> Answer:
        """Check the request, remember it, and show the sign-in or consent page."""
        q = request.query
        client_id = q.get("client_id", "")
        client = await self.clients.client(client_id) if client_id else None
        if client is None:
            return oauth_pages.page(
                400, "Unknown client", "<p>This application is not registered with Busymate.</p>"
            )
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri and len(client["redirect_uris"]) == 1:
            redirect_uri = client["redirect_uris"][0]
        if redirect_uri not in client["redirect_uris"]:
            return oauth_pages.page(
                400,
                "Redirect URI not allowed",
                "<p>The redirect URI does not match any URI this application registered.</p>",
            )
        state = q.get("state")
        if q.get("response_type") != "code":
            return oauth_pages.redirect(self.issuer, redirect_uri, state, error="unsupported_response_type")
        challenge = q.get("code_challenge", "")
        if q.get("code_challenge_method") != "S256" or not (43 <= len(challenge) <= 128):
            return oauth_pages.redirect(
                self.issuer,
                redirect_uri,
                state,
                error="invalid_request",
                description="PKCE with code_challenge_method=S256 is required",
            )
        resource = q.get("resource") or None
        if resource is not None and not oauth_uris.valid_resource(resource):
            return oauth_pages.redirect(
                self.issuer,
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
            return oauth_pages.page(
                400, "This request has expired", "<p>Start again from the application.</p>"
            )
        client = await self.clients.client(authorization["client_id"])
        if client is None:
            return oauth_pages.page(400, "Unknown client", "<p>This application is no longer registered.</p>")
        action = form.get("action")
        if action == "sign_in":
            self.auth.sign_ins.take(request.client_ip)
            user = await self.store.user_by_email(form.get("email", ""))
            hashed = user["encrypted_password"] if user is not None else None
            if not await password_matches(form.get("password", ""), hashed) or user is None:
                return oauth_pages.sign_in_page(
                    self.issuer, str(authorization["id"]), client, "Invalid login credentials", status=400
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
            return oauth_pages.sign_in_page(
                self.issuer, str(authorization["id"]), client, "Please sign in again.", status=403
            )
        redirect_uri = authorization["redirect_uri"]
        if action == "deny":
            await self._finish(authorization["id"], "denied", None, None, authorization["scope"])
            return oauth_pages.redirect(
                self.issuer,
                redirect_uri,
                authorization["state"],
                error="access_denied",
                description="The user denied the request",
            )
        if action != "approve":
            return oauth_pages.page(400, "Unknown action", "<p>Choose approve or deny.</p>")
        code = secrets.token_urlsafe(32)
        # The page's choice (read-only or read-write) narrows what the client asked for.
        scope = granted(authorization["scope"], form.get("access"))
        await self._finish(authorization["id"], "approved", user["id"], digest(code), scope)
        return oauth_pages.redirect(self.issuer, redirect_uri, authorization["state"], code=code)

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
        self, authorization_id: object, status: str, user_id: object, code_hash: bytes | None, scope: str
    ) -> None:
        async with self.store.pool.connection() as conn:
            await conn.execute(
                "update auth.oauth_authorizations set status = %(st)s, user_id = %(u)s, code_hash = %(c)s, "
                "scope = %(sc)s where id = %(id)s",
                {"st": status, "u": user_id, "c": code_hash, "sc": scope, "id": authorization_id},
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
            return oauth_pages.sign_in_page(self.issuer, authorization_id, client, None)
        return self._consent_page(
            authorization_id, client, resource, scope, user, request.cookies.get(COOKIE, "")
        )

    def _consent_page(
        self, authorization_id: str, client: Row, resource: str | None, scope: str, user: Row, cookie: str
    ) -> Answer:
        csrf = self._csrf(authorization_id, cookie)
        return oauth_pages.consent_page(self.issuer, authorization_id, client, resource, scope, user, csrf)
