"""What /auth/v1 keeps in the database (auth.users, identities, sessions), as the auth server's own login,
supabase_auth_admin, in short transactions. Refresh-token rotation is gateway/auth/refresh.py's.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from busymate.gateway.auth import refresh
from busymate.gateway.auth.errors import AuthError
from busymate.gateway.auth.refresh import Issued, digest, new_refresh_token
from busymate.gateway.auth.users import USER_COLUMNS, Row


class AuthStore:
    """The auth tables, through a small pool of supabase_auth_admin connections."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- users -----------------------------------------------------------------------------------------------

    async def create_user(
        self,
        email: str,
        password_hash: str | None,
        user_metadata: dict[str, object],
        app_metadata: dict[str, object],
        *,
        confirmed: bool,
    ) -> Row:
        """Insert a user with an `email` identity; AuthError 422 email_exists when the address is taken."""
        user_id = uuid.uuid4()
        app = {"provider": "email", "providers": ["email"], **app_metadata}
        async with self.pool.connection() as conn, conn.transaction():
            try:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, "
                    "email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, "
                    "is_sso_user, is_anonymous) values ('00000000-0000-0000-0000-000000000000', %(id)s, "
                    "'authenticated', 'authenticated', %(email)s, %(hash)s, "
                    "case when %(confirmed)s then now() end, %(app)s, %(meta)s, now(), now(), false, false) "
                    f"returning {USER_COLUMNS}",
                    {
                        "id": user_id,
                        "email": email,
                        "hash": password_hash,
                        "confirmed": confirmed,
                        "app": Jsonb(app),
                        "meta": Jsonb(user_metadata),
                    },
                )
            except psycopg.errors.UniqueViolation as exc:
                raise AuthError(
                    422, "email_exists", "A user with this email address has already been registered"
                ) from exc
            row = await cur.fetchone()
            assert row is not None
            await conn.execute(
                "insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, "
                "updated_at) values (%(pid)s, %(uid)s, %(data)s, 'email', now(), now())",
                {
                    "pid": str(user_id),
                    "uid": user_id,
                    "data": Jsonb({"sub": str(user_id), "email": email, "email_verified": confirmed}),
                },
            )
        return row

    async def user_by_email(self, email: str) -> Row | None:
        """The live user with this address (case-insensitive), if any."""
        async with self.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                f"select {USER_COLUMNS} from auth.users where lower(email) = lower(%(e)s) "
                "and deleted_at is null and not is_sso_user",
                {"e": email},
            )
            return await cur.fetchone()

    async def user_by_id(self, user_id: str) -> Row | None:
        """The live user with this id, if any (a malformed id is no user)."""
        try:
            key = uuid.UUID(user_id)
        except ValueError:
            return None
        async with self.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                f"select {USER_COLUMNS} from auth.users where id = %(id)s and deleted_at is null", {"id": key}
            )
            return await cur.fetchone()

    async def identities(self, user_id: object) -> list[Row]:
        """The user's identities, oldest first."""
        async with self.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                "select id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, "
                "updated_at, email from auth.identities where user_id = %(id)s order by created_at",
                {"id": user_id},
            )
            return await cur.fetchall()

    async def update_user(self, user_id: object, changes: dict[str, object]) -> Row:
        """Apply column changes (only names this module chooses, never request text) and return the row."""
        allowed = {
            "email",
            "encrypted_password",
            "raw_user_meta_data",
            "raw_app_meta_data",
            "email_confirmed_at",
            "banned_until",
            "role",
        }
        assert set(changes) <= allowed
        params: dict[str, object] = {"id": user_id}
        sets = ["updated_at = now()"]
        for name, value in changes.items():
            params[name] = Jsonb(value) if isinstance(value, dict) else value
            sets.append(f"{name} = %({name})s")
        async with self.pool.connection() as conn, conn.transaction():
            try:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    f"update auth.users set {', '.join(sets)} where id = %(id)s and deleted_at is null "
                    f"returning {USER_COLUMNS}",
                    params,
                )
            except psycopg.errors.UniqueViolation as exc:
                raise AuthError(
                    422, "email_exists", "A user with this email address has already been registered"
                ) from exc
            row = await cur.fetchone()
            if row is None:
                raise AuthError(404, "user_not_found", "User not found")
            if "email" in changes:
                await conn.execute(
                    "update auth.identities set identity_data = identity_data || jsonb_build_object('email', "
                    "%(e)s::text), updated_at = now() where user_id = %(id)s and provider = 'email'",
                    {"e": changes["email"], "id": user_id},
                )
        return row

    async def list_users(self, page: int, per_page: int) -> tuple[list[Row], int]:
        """One page of live users, newest first (as GoTrue lists them), and how many there are."""
        async with self.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                f"select {USER_COLUMNS} from auth.users where deleted_at is null "
                "order by created_at desc, id limit %(n)s offset %(o)s",
                {"n": per_page, "o": (page - 1) * per_page},
            )
            rows = await cur.fetchall()
            total = await (
                await conn.execute("select count(*) from auth.users where deleted_at is null")
            ).fetchone()
        return rows, int(str(total[0])) if total else 0

    async def delete_user(self, user_id: object, *, soft: bool) -> bool:
        """Delete (or soft-delete: anonymise and keep the row) a user; their sessions go either way."""
        async with self.pool.connection() as conn, conn.transaction():
            if soft:
                cur = await conn.execute(
                    "update auth.users set deleted_at = now(), email = null, phone = null, "
                    "encrypted_password = '', raw_user_meta_data = '{}', updated_at = now() "
                    "where id = %(id)s and deleted_at is null",
                    {"id": user_id},
                )
                await conn.execute("delete from auth.sessions where user_id = %(id)s", {"id": user_id})
                await conn.execute("delete from auth.identities where user_id = %(id)s", {"id": user_id})
            else:
                cur = await conn.execute("delete from auth.users where id = %(id)s", {"id": user_id})
            return cur.rowcount > 0

    # -- sessions --------------------------------------------------------------------------------------------

    async def start_session(
        self,
        user: Row,
        *,
        ip: str,
        user_agent: str | None,
        oauth_client_id: str | None = None,
        resource: str | None = None,
        scope: str | None = None,
    ) -> Issued:
        """A new session with its first refresh token; records the sign-in time."""
        session_id = uuid.uuid4()
        token = new_refresh_token()
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "insert into auth.sessions (id, user_id, ip, user_agent, oauth_client_id, resource, scope) "
                "values (%(s)s, %(u)s, %(ip)s, %(ua)s, %(c)s, %(r)s, %(sc)s)",
                {
                    "s": session_id,
                    "u": user["id"],
                    "ip": ip or None,
                    "ua": user_agent,
                    "c": oauth_client_id,
                    "r": resource,
                    "sc": scope,
                },
            )
            await conn.execute(
                "insert into auth.refresh_tokens (token_hash, session_id, user_id) "
                "values (%(h)s, %(s)s, %(u)s)",
                {"h": digest(token), "s": session_id, "u": user["id"]},
            )
            cur = await conn.cursor(row_factory=dict_row).execute(
                f"update auth.users set last_sign_in_at = now() where id = %(u)s returning {USER_COLUMNS}",
                {"u": user["id"]},
            )
            fresh = await cur.fetchone()
        return Issued(session_id, token, fresh or user, oauth_client_id, resource, scope)

    async def refresh(self, token: str, *, oauth_client_id: str | None = None) -> Issued:
        """Rotate a refresh token (gateway/auth/refresh.py); AuthError 400 when it cannot be used."""
        return await refresh.refresh(self.pool, token, oauth_client_id=oauth_client_id)

    async def session_exists(self, session_id: str) -> bool:
        """Whether the session a token names is still open."""
        try:
            key = uuid.UUID(session_id)
        except ValueError:
            return False
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("select 1 from auth.sessions where id = %(s)s", {"s": key})
            ).fetchone()
        return row is not None

    async def end_sessions(self, user_id: object, session_id: str, scope: str) -> None:
        """Sign out: `local` ends this session, `global` every session of the user, `others` all but this."""
        where = {
            "local": "id = %(s)s",
            "global": "user_id = %(u)s",
            "others": "user_id = %(u)s and id <> %(s)s",
        }[scope]
        async with self.pool.connection() as conn:
            await conn.execute(
                f"delete from auth.sessions where {where}", {"s": uuid.UUID(session_id), "u": user_id}
            )
