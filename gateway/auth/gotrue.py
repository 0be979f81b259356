"""/auth/v1: the part of GoTrue the Supabase clients use, on our own auth tables (docs/auth.md).

The router and the session endpoints: sign-up, password sign-in, refresh (rotation is
gateway/auth/refresh.py's), GET/PUT /user, sign-out (local, global, others), /settings, /health and the JWKS;
the admin user API is gateway/auth/admin.py's. Access tokens carry the claims GoTrue issues and are signed by
`SigningKeys` (HS256 or ES256), so REST and Realtime accept them.
"""

from __future__ import annotations

import time
import uuid

import psycopg

from busymate.gateway.auth import validate
from busymate.gateway.auth.admin import AdminApi
from busymate.gateway.auth.answer import Answer, Handler
from busymate.gateway.auth.errors import API_VERSION, AuthError, HttpRequest
from busymate.gateway.auth.passwords import hash_password, password_matches
from busymate.gateway.auth.ratelimit import RateLimiter
from busymate.gateway.auth.refresh import Issued
from busymate.gateway.auth.store import AuthStore
from busymate.gateway.auth.users import Row, user_json
from busymate.gateway.availability import RETRY_AFTER, Availability, connection_lost
from busymate.gateway.edge import EdgeError, JwtVerifier
from busymate.keys import SigningKeys
from busymate.settings import Settings


class AuthApi:
    """The GoTrue-compatible endpoints below /auth/v1."""

    def __init__(
        self,
        settings: Settings,
        store: AuthStore,
        keys: SigningKeys,
        verifier: JwtVerifier,
        availability: Availability | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.verifier = verifier
        self.availability = availability
        self.sign_ins = RateLimiter(settings.auth_rate_limit)
        self.admin = AdminApi(settings.auth_url, store, self.claims_of)
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/health"): self.health,
            ("GET", "/settings"): self.public_settings,
            ("GET", "/.well-known/jwks.json"): self.jwks,
            ("POST", "/signup"): self.signup,
            ("POST", "/token"): self.token,
            ("GET", "/user"): self.get_user,
            ("PUT", "/user"): self.put_user,
            ("POST", "/logout"): self.logout,
            ("GET", "/admin/users"): self.admin.list_users,
            ("POST", "/admin/users"): self.admin.create_user,
        }

    async def handle(self, request: HttpRequest) -> Answer:
        """Route one request; AuthError becomes GoTrue's error JSON."""
        version = request.headers.get("x-supabase-api-version")
        try:
            handler = self.routes.get((request.method, request.path.rstrip("/") or "/"))
            if handler is None and request.path.startswith("/admin/users/"):
                handler = self.admin.one_user
            if handler is None:
                raise AuthError(404, "not_found", f"Unsupported path: {request.method} {request.path}")
            if handler not in (self.health, self.public_settings, self.jwks):
                self.database_check()
            try:
                answer = await handler(request)
            except psycopg.OperationalError as exc:
                raise self.database_lost(exc) from exc
        except AuthError as exc:
            answer = Answer(exc.status, exc.body(version), {**exc.headers, "x-sb-error-code": exc.error_code})
        headers = answer.headers or {}
        headers["x-supabase-api-version"] = API_VERSION
        answer.headers = headers
        return answer

    def database_check(self) -> None:
        """503 at once while the database is known to be away, rather than waiting on the pool."""
        if self.availability is not None and self.availability.down:
            raise _unavailable()

    def database_lost(self, exc: psycopg.OperationalError) -> AuthError:
        """The error for a database failure under a request: 503 when the connection went away (the database
        is probed until it is back), 500 for anything else."""
        if not connection_lost(exc):
            return AuthError(500, "unexpected_failure", "Unexpected database failure")
        if self.availability is not None:
            self.availability.lost(exc)
        return _unavailable()

    # -- tokens ----------------------------------------------------------------------------------------------

    def access_token(
        self, issued: Issued, amr: str, identities: list[Row] | None = None
    ) -> dict[str, object]:
        """The session response for `issued`: a fresh access token beside its refresh token and the user."""
        now = int(time.time())
        exp = now + self.settings.jwt_expiry
        user = issued.user
        claims: dict[str, object] = {
            "iss": self.settings.auth_url,
            "sub": str(user["id"]),
            "aud": issued.resource or "authenticated",
            "exp": exp,
            "iat": now,
            "email": user["email"] or "",
            "phone": user["phone"] or "",
            "app_metadata": user["raw_app_meta_data"] or {},
            "user_metadata": user["raw_user_meta_data"] or {},
            "role": user["role"] or "authenticated",
            "aal": "aal1",
            "amr": [{"method": amr, "timestamp": now}],
            "session_id": str(issued.session_id),
            "is_anonymous": bool(user["is_anonymous"]),
        }
        if issued.oauth_client_id is not None:
            claims["client_id"] = issued.oauth_client_id
        if issued.scope:
            claims["scope"] = issued.scope  # what the user granted at consent (busymate/scopes.py)
        return {
            "access_token": self.keys.sign(claims),
            "token_type": "bearer",
            "expires_in": self.settings.jwt_expiry,
            "expires_at": exp,
            "refresh_token": issued.refresh_token,
            "user": user_json(user, identities),
        }

    def claims_of(self, request: HttpRequest) -> dict[str, object]:
        """The verified claims of the request's bearer token; 401 in GoTrue's shape otherwise."""
        token = request.bearer()
        if token is None:
            raise AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token")
        try:
            return self.verifier.verify(token)
        except EdgeError as exc:
            detail = f": {exc.details}" if exc.details else ""
            raise AuthError(
                401, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc.message}{detail}"
            ) from exc

    async def session_user(self, request: HttpRequest) -> tuple[dict[str, object], Row]:
        """A user's own token: its claims and the live user; 401/403 for anything else."""
        claims = self.claims_of(request)
        if claims.get("role") == "device":
            raise AuthError(401, "bad_jwt", "invalid JWT: a device credential is not a user session")
        sub = claims.get("sub")
        if not isinstance(sub, str) or sub == "":
            raise AuthError(403, "bad_jwt", "invalid claim: missing sub claim")
        user = await self.store.user_by_id(sub)
        if user is None:
            raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
        session_id = claims.get("session_id")
        if not isinstance(session_id, str) or not await self.store.session_exists(session_id):
            raise AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
        return claims, user

    # -- public endpoints ------------------------------------------------------------------------------------

    async def health(self, request: HttpRequest) -> Answer:
        return Answer(
            200, {"version": "busymate", "name": "GoTrue", "description": "Busymate's local /auth/v1"}
        )

    async def public_settings(self, request: HttpRequest) -> Answer:
        external = {
            name: False
            for name in ("anonymous_users", "apple", "azure", "github", "gitlab", "google", "phone", "saml")
        }
        external["email"] = True
        return Answer(
            200,
            {
                "external": external,
                "disable_signup": not self.settings.auth_signup,
                "mailer_autoconfirm": True,
                "phone_autoconfirm": False,
                "sms_provider": "",
                "saml_enabled": False,
            },
        )

    async def jwks(self, request: HttpRequest) -> Answer:
        return Answer(200, self.keys.jwks(), {"cache-control": "public, max-age=600"})

    async def signup(self, request: HttpRequest) -> Answer:
        self.sign_ins.take(request.client_ip)
        if not self.settings.auth_signup:
            raise AuthError(422, "signup_disabled", "Signups not allowed for this instance")
        body = request.json()
        email = validate.email(body.get("email"))
        password = validate.password(body.get("password"))
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise AuthError(400, "validation_failed", "data must be a JSON object")
        if await self.store.user_by_email(email) is not None:
            raise AuthError(422, "user_already_exists", "User already registered")
        user = await self.store.create_user(email, await hash_password(password), data, {}, confirmed=True)
        issued = await self.store.start_session(
            user, ip=request.client_ip, user_agent=request.headers.get("user-agent")
        )
        return Answer(200, self.access_token(issued, "password", await self.store.identities(user["id"])))

    async def token(self, request: HttpRequest) -> Answer:
        grant = request.query.get("grant_type", "")
        body = request.json()
        if grant == "password":
            self.sign_ins.take(request.client_ip)
            email = body.get("email")
            password = body.get("password")
            if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
                raise AuthError(400, "validation_failed", "Sign in requires an email and a password")
            user = await self.store.user_by_email(email)
            hashed = user["encrypted_password"] if user is not None else None
            if not await password_matches(password, hashed) or user is None:
                raise AuthError(400, "invalid_credentials", "Invalid login credentials")
            if user["banned_until"] is not None and user["banned_until"].timestamp() > time.time():
                raise AuthError(400, "user_banned", "User is banned")
            issued = await self.store.start_session(
                user, ip=request.client_ip, user_agent=request.headers.get("user-agent")
            )
            return Answer(200, self.access_token(issued, "password", await self.store.identities(user["id"])))
        if grant == "refresh_token":
            token = body.get("refresh_token")
            if not isinstance(token, str) or not token:
                raise AuthError(400, "validation_failed", "refresh_token required")
            issued = await self.store.refresh(token)
            identities = await self.store.identities(issued.user["id"])
            return Answer(200, self.access_token(issued, "password", identities))
        raise AuthError(400, "validation_failed", "unsupported_grant_type")

    async def get_user(self, request: HttpRequest) -> Answer:
        _, user = await self.session_user(request)
        return Answer(200, user_json(user, await self.store.identities(user["id"])))

    async def put_user(self, request: HttpRequest) -> Answer:
        claims, user = await self.session_user(request)
        body = request.json()
        changes: dict[str, object] = {}
        if body.get("email") is not None:
            email = validate.email(body.get("email"))
            if email.lower() != str(user["email"] or "").lower():
                changes["email"] = email
        if body.get("password") is not None:
            password = validate.password(body.get("password"))
            if await password_matches(password, user["encrypted_password"]):
                raise AuthError(
                    422, "same_password", "New password should be different from the old password."
                )
            changes["encrypted_password"] = await hash_password(password)
        data = body.get("data")
        if data is not None:
            if not isinstance(data, dict):
                raise AuthError(400, "validation_failed", "data must be a JSON object")
            changes["raw_user_meta_data"] = validate.merge(user["raw_user_meta_data"], data)
        if changes:
            user = await self.store.update_user(user["id"], changes)
        if "encrypted_password" in changes:
            # As GoTrue does: a new password ends every other session of the user.
            await self.store.end_sessions(user["id"], str(claims["session_id"]), "others")
        return Answer(200, user_json(user, await self.store.identities(user["id"])))

    async def logout(self, request: HttpRequest) -> Answer:
        scope = request.query.get("scope", "global")
        if scope not in ("global", "local", "others"):
            raise AuthError(400, "validation_failed", "scope must be one of global, local, others")
        claims = self.claims_of(request)
        sub = claims.get("sub")
        session_id = claims.get("session_id")
        if claims.get("role") == "device" or not isinstance(sub, str) or not isinstance(session_id, str):
            raise AuthError(403, "bad_jwt", "invalid claim: missing sub claim")
        await self.store.end_sessions(uuid.UUID(sub), session_id, scope)
        return Answer(204)


def _unavailable() -> AuthError:
    return AuthError(
        503,
        "unexpected_failure",
        "The database is not reachable; try again shortly",
        headers={"retry-after": RETRY_AFTER},
    )
