"""Who the CLI acts as: the session `busymate login` stored, else the project's local admin.

Both live under the state folder, 0600: `session.json` (the signed-in user's access and refresh tokens,
refreshed when the access token is about to expire) and `local-admin.json` (the email and generated password
of `admin@busymate.local`, created through the admin API on first use and given the admin role).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from busymate import tokens
from busymate.client import Api
from busymate.errors import BusymateError
from busymate.settings import Settings

LOCAL_ADMIN_EMAIL = "admin@busymate.local"
SESSION_FILE = "session.json"
ADMIN_FILE = "local-admin.json"
REFRESH_MARGIN = 60  # seconds before expiry when a stored session is refreshed


def _write_private(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    tmp.replace(path)


def _auth_post(
    settings: Settings, path: str, body: dict[str, object], token: str | None = None
) -> dict[str, Any]:
    with Api(settings, token) as api:
        answer = api.request("POST", f"/auth/v1{path}", json=body)
    return answer if isinstance(answer, dict) else {}


def sign_in(settings: Settings, email: str, password: str) -> dict[str, Any]:
    """A session for email and password (POST /auth/v1/token?grant_type=password)."""
    return _auth_post(settings, "/token?grant_type=password", {"email": email, "password": password})


def local_admin(settings: Settings) -> tuple[str, str]:
    """The local admin's email and password, creating the user (role admin) the first time."""
    path = settings.state_dir / ADMIN_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        return str(saved["email"]), str(saved["password"])
    password = secrets.token_urlsafe(18)
    service = tokens.service_role_key(settings.jwt_secret)
    try:
        created = _auth_post(
            settings,
            "/admin/users",
            {"email": LOCAL_ADMIN_EMAIL, "password": password, "email_confirm": True},
            token=service,
        )
    except BusymateError as exc:
        if "already been registered" not in str(exc):
            raise
        # The user exists but its password file is gone (a new checkout on an old database): reset it.
        with Api(settings, service) as api:
            found = [
                u
                for u in api.request("GET", "/auth/v1/admin/users", params={"page": "1", "per_page": "1000"})[
                    "users"
                ]
                if u["email"] == LOCAL_ADMIN_EMAIL
            ]
            if not found:
                raise
            created = api.request(
                "PUT", f"/auth/v1/admin/users/{found[0]['id']}", json={"password": password}
            )
    with Api(settings, service) as api:
        api.rpc("set_user_role", {"user_id": created["id"], "role": "admin"})
    _write_private(path, {"email": LOCAL_ADMIN_EMAIL, "password": password, "id": created["id"]})
    return LOCAL_ADMIN_EMAIL, password


def store_session(settings: Settings, session: dict[str, Any]) -> None:
    """Keep a session for the CLI's own commands."""
    _write_private(
        settings.state_dir / SESSION_FILE,
        {
            "access_token": session["access_token"],
            "refresh_token": session["refresh_token"],
            "expires_at": session.get("expires_at")
            or int(time.time()) + int(session.get("expires_in", 3600)),
            "email": (session.get("user") or {}).get("email"),
        },
    )


def stored_session(settings: Settings) -> dict[str, Any] | None:
    """The stored session, refreshed if it is about to expire; None when there is none."""
    path = settings.state_dir / SESSION_FILE
    if not path.exists():
        return None
    saved: dict[str, Any] = json.loads(path.read_text())
    if int(saved.get("expires_at", 0)) - REFRESH_MARGIN > time.time():
        return saved
    try:
        fresh = _auth_post(
            settings, "/token?grant_type=refresh_token", {"refresh_token": saved["refresh_token"]}
        )
    except BusymateError as exc:
        raise BusymateError(f"the stored session has ended ({exc}); run `busymate login` again") from exc
    store_session(settings, fresh)
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def forget_session(settings: Settings) -> bool:
    """Sign the stored session out and delete it; returns whether there was one."""
    path = settings.state_dir / SESSION_FILE
    if not path.exists():
        return False
    saved = json.loads(path.read_text())
    with Api(settings, str(saved["access_token"])) as api, contextlib.suppress(BusymateError):
        api.request(
            "POST", "/auth/v1/logout", params={"scope": "local"}
        )  # the server may be down: forget anyway
    path.unlink()
    return True


def acting_token(settings: Settings) -> tuple[str, str]:
    """The token the CLI acts with and whose it is: the stored session, else the local admin."""
    saved = stored_session(settings)
    if saved is not None:
        return str(saved["access_token"]), str(saved.get("email") or "the signed-in user")
    email, password = local_admin(settings)
    return str(sign_in(settings, email, password)["access_token"]), email
