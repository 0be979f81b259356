"""Who the CLI acts as: the session `busymate login` stored, else the project's local admin.

All live under the state folder, 0600: `session.json` (the signed-in user's access and refresh tokens,
refreshed when the access token is about to expire), `local-admin.json` (the email and generated password
of `admin@busymate.local`, created through the admin API on first use and given the admin role) and
`local-admin-session.json` (the local admin's session, kept and refreshed the same way, so commands do not
each sign in: the sign-in limit is 30 per address per 5 minutes). When the database no longer knows the local
admin (`busymate db reset`), the user is made again with its saved password.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from busymate import tokens
from busymate.api_core import ApiRefused
from busymate.client import Api
from busymate.errors import BusymateError
from busymate.settings import Settings

LOCAL_ADMIN_EMAIL = "admin@busymate.local"
SESSION_FILE = "session.json"
ADMIN_FILE = "local-admin.json"
ADMIN_SESSION_FILE = "local-admin-session.json"
LOCK_FILE = "session.lock"
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
    with Api.for_project(settings, token) as api:
        answer = api.request("POST", f"/auth/v1{path}", json=body)
    return answer if isinstance(answer, dict) else {}


def sign_in(settings: Settings, email: str, password: str) -> dict[str, Any]:
    """A session for email and password (POST /auth/v1/token?grant_type=password)."""
    return _auth_post(settings, "/token?grant_type=password", {"email": email, "password": password})


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """One process at a time signs in or refreshes (`busymate up`, its proxy and a `tail` share a session)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def local_admin(settings: Settings) -> tuple[str, str]:
    """The local admin's email and password, creating the user (role admin) the first time."""
    path = settings.state_dir / ADMIN_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        return str(saved["email"]), str(saved["password"])
    password = secrets.token_urlsafe(18)
    _make_local_admin(settings, password)
    return LOCAL_ADMIN_EMAIL, password


def _make_local_admin(settings: Settings, password: str) -> None:
    """Create admin@busymate.local with `password` and the admin role, or give an existing one that password
    (a new checkout on an old database, or a database reset under a saved password file)."""
    service = tokens.service_role_key(settings.jwt_secret)
    with Api.for_project(settings, service) as api:
        try:
            created = api.request(
                "POST",
                "/auth/v1/admin/users",
                json={"email": LOCAL_ADMIN_EMAIL, "password": password, "email_confirm": True},
            )
        except ApiRefused as exc:
            if exc.code != "email_exists":
                raise
            listed = api.request("GET", "/auth/v1/admin/users", params={"page": "1", "per_page": "1000"})
            found = [u for u in listed["users"] if u["email"] == LOCAL_ADMIN_EMAIL]
            if not found:
                raise
            created = api.request(
                "PUT", f"/auth/v1/admin/users/{found[0]['id']}", json={"password": password}
            )
        api.rpc("set_user_role", {"user_id": created["id"], "role": "admin"})
    _write_private(
        settings.state_dir / ADMIN_FILE,
        {"email": LOCAL_ADMIN_EMAIL, "password": password, "id": created["id"]},
    )


def admin_sign_in(settings: Settings) -> dict[str, Any]:
    """A new session for the local admin; when its saved password is refused (the database was reset, or
    the user deleted), the user is made again with that password first."""
    email, password = local_admin(settings)
    try:
        return sign_in(settings, email, password)
    except ApiRefused as exc:
        if exc.code != "invalid_credentials":
            raise
    _make_local_admin(settings, password)
    return sign_in(settings, email, password)


def admin_session(settings: Settings) -> dict[str, Any]:
    """The local admin's kept session (0600, like `busymate login`'s), refreshed when it is about to expire
    and signed in again only when it cannot be: commands do not each spend a sign-in."""
    path = settings.state_dir / ADMIN_SESSION_FILE
    with _locked(settings):
        saved = _read(path)
        if saved is not None and _fresh(saved):
            return saved
        if saved is not None:
            with contextlib.suppress(ApiRefused):  # ended (sign-out, database reset): sign in again below
                return _keep(path, _refresh(settings, saved))
        return _keep(path, admin_sign_in(settings))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and saved.get("access_token") else None


def _fresh(saved: dict[str, Any]) -> bool:
    return int(saved.get("expires_at") or 0) - REFRESH_MARGIN > time.time()


def _refresh(settings: Settings, saved: dict[str, Any]) -> dict[str, Any]:
    return _auth_post(settings, "/token?grant_type=refresh_token", {"refresh_token": saved["refresh_token"]})


def _keep(path: Path, session: dict[str, Any]) -> dict[str, Any]:
    kept = {
        "access_token": session["access_token"],
        "refresh_token": session["refresh_token"],
        "expires_at": session.get("expires_at") or int(time.time()) + int(session.get("expires_in", 3600)),
        "email": (session.get("user") or {}).get("email"),
    }
    _write_private(path, kept)
    return kept


def forget_local_sessions(settings: Settings) -> list[str]:
    """Delete the kept sessions (after the database was rebuilt they name sessions and users it no longer
    has); returns what was forgotten."""
    forgotten = []
    for name, what in (
        (SESSION_FILE, "the `busymate login` session (sign in again)"),
        (ADMIN_SESSION_FILE, "the local admin's session"),
    ):
        path = settings.state_dir / name
        if path.exists():
            path.unlink()
            forgotten.append(what)
    return forgotten


def store_session(settings: Settings, session: dict[str, Any]) -> None:
    """Keep a session for the CLI's own commands."""
    _keep(settings.state_dir / SESSION_FILE, session)


def stored_session(settings: Settings) -> dict[str, Any] | None:
    """The stored session, refreshed if it is about to expire; None when there is none."""
    path = settings.state_dir / SESSION_FILE
    if not path.exists():
        return None
    with _locked(settings):
        saved = _read(path)
        if saved is None:
            return None
        if _fresh(saved):
            return saved
        try:
            return _keep(path, _refresh(settings, saved))
        except ApiRefused as exc:
            raise BusymateError(f"the stored session has ended ({exc}); run `busymate login` again") from exc


def forget_session(settings: Settings) -> bool:
    """Sign the stored session out and delete it; returns whether there was one."""
    path = settings.state_dir / SESSION_FILE
    if not path.exists():
        return False
    saved = json.loads(path.read_text())
    with Api.for_project(settings, str(saved["access_token"])) as api, contextlib.suppress(BusymateError):
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
    return str(admin_session(settings)["access_token"]), LOCAL_ADMIN_EMAIL
