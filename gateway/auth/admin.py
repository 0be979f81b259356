"""/auth/v1/admin/users: GoTrue's user admin API, for the service role only."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from busymate.gateway.auth import validate
from busymate.gateway.auth.answer import Answer
from busymate.gateway.auth.errors import AuthError, HttpRequest
from busymate.gateway.auth.passwords import hash_password
from busymate.gateway.auth.store import AuthStore
from busymate.gateway.auth.users import user_json

PER_PAGE_MAX = 1000


class AdminApi:
    """List, create, read, update and delete users; `claims_of` reads the caller's verified token."""

    def __init__(
        self, auth_url: str, store: AuthStore, claims_of: Callable[[HttpRequest], dict[str, object]]
    ) -> None:
        self.auth_url = auth_url
        self.store = store
        self.claims_of = claims_of

    def require_admin(self, request: HttpRequest) -> None:
        """403 unless the caller holds the service role."""
        if self.claims_of(request).get("role") != "service_role":
            raise AuthError(403, "not_admin", "User not allowed")

    async def list_users(self, request: HttpRequest) -> Answer:
        """GET /admin/users: one page of users, with GoTrue's count and link headers."""
        self.require_admin(request)
        page = validate.positive(request.query.get("page"), 1)
        per_page = min(validate.positive(request.query.get("per_page"), 50), PER_PAGE_MAX)
        rows, total = await self.store.list_users(page, per_page)
        headers = {"x-total-count": str(total)}
        links = []
        last = max(1, -(-total // per_page))
        base = f"{self.auth_url}/admin/users"
        if page < last:
            links.append(f'<{base}?page={page + 1}&per_page={per_page}>; rel="next"')
        links.append(f'<{base}?page={last}&per_page={per_page}>; rel="last"')
        headers["link"] = ", ".join(links)
        return Answer(200, {"users": [user_json(r) for r in rows], "aud": "authenticated"}, headers)

    async def create_user(self, request: HttpRequest) -> Answer:
        """POST /admin/users."""
        self.require_admin(request)
        body = request.json()
        email = validate.email(body.get("email"))
        password = body.get("password")
        hashed = await hash_password(validate.password(password)) if password is not None else None
        user_meta = validate.json_object(body.get("user_metadata", body.get("data")), "user_metadata")
        app_meta = validate.json_object(body.get("app_metadata"), "app_metadata")
        if await self.store.user_by_email(email) is not None:
            raise AuthError(422, "email_exists", "A user with this email address has already been registered")
        user = await self.store.create_user(
            email, hashed, user_meta, app_meta, confirmed=bool(body.get("email_confirm"))
        )
        return Answer(200, user_json(user, await self.store.identities(user["id"])))

    async def one_user(self, request: HttpRequest) -> Answer:
        """GET, PUT or DELETE /admin/users/<id>."""
        self.require_admin(request)
        user_id = request.path.removeprefix("/admin/users/").strip("/")
        try:
            key = uuid.UUID(user_id)
        except ValueError as exc:
            raise AuthError(404, "user_not_found", "User not found") from exc
        if request.method == "GET":
            user = await self.store.user_by_id(str(key))
            if user is None:
                raise AuthError(404, "user_not_found", "User not found")
            return Answer(200, user_json(user, await self.store.identities(key)))
        if request.method == "PUT":
            return await self._update(key, request.json())
        if request.method == "DELETE":
            soft = bool(request.json().get("should_soft_delete"))
            if not await self.store.delete_user(key, soft=soft):
                raise AuthError(404, "user_not_found", "User not found")
            return Answer(200, {})
        raise AuthError(405, "method_not_allowed", f"{request.method} is not allowed here")

    async def _update(self, key: uuid.UUID, body: dict[str, Any]) -> Answer:
        user = await self.store.user_by_id(str(key))
        if user is None:
            raise AuthError(404, "user_not_found", "User not found")
        changes: dict[str, object] = {}
        if body.get("email") is not None:
            changes["email"] = validate.email(body["email"])
        if body.get("password") is not None:
            changes["encrypted_password"] = await hash_password(validate.password(body["password"]))
        if body.get("user_metadata") is not None:
            changes["raw_user_meta_data"] = validate.merge(
                user["raw_user_meta_data"], validate.json_object(body["user_metadata"], "user_metadata")
            )
        if body.get("app_metadata") is not None:
            changes["raw_app_meta_data"] = validate.merge(
                user["raw_app_meta_data"], validate.json_object(body["app_metadata"], "app_metadata")
            )
        if body.get("email_confirm") is True and user["email_confirmed_at"] is None:
            changes["email_confirmed_at"] = "now"
        if body.get("ban_duration") is not None:
            changes["banned_until"] = validate.ban_until(body["ban_duration"])
        if changes:
            user = await self.store.update_user(key, changes)
        if "encrypted_password" in changes or "banned_until" in changes:
            await self.store.end_sessions(key, str(uuid.UUID(int=0)), "global")
        return Answer(200, user_json(user, await self.store.identities(key)))
