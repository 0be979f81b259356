"""Refresh tokens: issuing them and rotating them with GoTrue's reuse detection.

Refresh tokens are random strings handed to the client once; only their SHA-256 digests are stored, so a
lookup by digest is the comparison. A refresh token is used once: using it revokes it and issues its child.
Presenting a revoked token again, when it is the parent of the session's current token or was revoked within
REUSE_INTERVAL (a client that retried, two tabs refreshing at once), rotates the session's newest token once
more (GoTrue hands back the current token; we keep only digests, so we issue its successor). Anything older is
a replay: the whole session is ended (GoTrue's reuse detection).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from busymate.gateway.auth.errors import AuthError
from busymate.gateway.auth.users import USER_COLUMNS, Row

REUSE_INTERVAL = 10  # seconds, GoTrue's refresh_token_reuse_interval


def digest(token: str) -> bytes:
    """The stored form of a refresh token or an authorization code."""
    return hashlib.sha256(token.encode()).digest()


def new_refresh_token() -> str:
    """A fresh refresh token (GoTrue's are 12 characters; ours carry 192 bits)."""
    return secrets.token_urlsafe(24)


@dataclass
class Issued:
    """A session's new refresh token and what the access token needs."""

    session_id: uuid.UUID
    refresh_token: str
    user: Row
    oauth_client_id: str | None = None
    resource: str | None = None
    scope: str | None = None  # an OAuth grant's scope (busymate/scopes.py), kept by every refresh


async def refresh(pool: AsyncConnectionPool, token: str, *, oauth_client_id: str | None = None) -> Issued:
    """Rotate a refresh token (see the module docstring); AuthError 400 when it cannot be used."""
    replayed = False
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.cursor(row_factory=dict_row).execute(
            "select t.id, t.session_id, t.revoked, extract(epoch from now() - t.updated_at) as age, "
            "s.oauth_client_id, s.resource, s.scope, exists (select from auth.refresh_tokens as c "
            "where c.parent = t.id and not c.revoked) as parent_of_current "
            "from auth.refresh_tokens as t "
            "join auth.sessions as s on s.id = t.session_id where t.token_hash = %(h)s "
            "for update of t, s",
            {"h": digest(token)},
        )
        row = await cur.fetchone()
        if row is None:
            raise AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
        if row["oauth_client_id"] != oauth_client_id:
            # A password session's token at the OAuth endpoint, or another client's: as if unknown.
            raise AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
        parent = row["id"]
        if row["revoked"]:
            if not row["parent_of_current"] and float(row["age"]) > REUSE_INTERVAL:
                # A replay: the whole session goes (committed), then the refusal.
                await conn.execute("delete from auth.sessions where id = %(s)s", {"s": row["session_id"]})
                replayed = True
            else:
                newest = await (
                    await conn.execute(
                        "select id from auth.refresh_tokens where session_id = %(s)s and not revoked "
                        "order by id desc limit 1 for update",
                        {"s": row["session_id"]},
                    )
                ).fetchone()
                if newest is None:
                    raise _already_used()
                parent = newest[0]
        user = (
            None if replayed else await _rotate(conn, row["session_id"], parent, fresh := new_refresh_token())
        )
    if replayed:
        raise _already_used()
    if user is None:
        raise AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
    return Issued(row["session_id"], fresh, user, row["oauth_client_id"], row["resource"], row["scope"])


async def _rotate(
    conn: psycopg.AsyncConnection[Any], session_id: object, parent: object, fresh: str
) -> Row | None:
    """Revoke `parent`, issue `fresh` as its child; the session's user while it may still sign in."""
    await conn.execute(
        "update auth.refresh_tokens set revoked = true, updated_at = now() where id = %(id)s",
        {"id": parent},
    )
    cur = await conn.cursor(row_factory=dict_row).execute(
        "with s as (update auth.sessions set refreshed_at = now(), updated_at = now() where id = %(s)s "
        "returning user_id), t as (insert into auth.refresh_tokens (token_hash, session_id, user_id, "
        "parent) select %(h)s, %(s)s, s.user_id, %(p)s from s) "
        f"select {USER_COLUMNS} from auth.users where id = (select user_id from s) "
        "and deleted_at is null and (banned_until is null or banned_until < now())",
        {"s": session_id, "h": digest(fresh), "p": parent},
    )
    return await cur.fetchone()


def _already_used() -> AuthError:
    return AuthError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
