"""A small committed world on a started stack, for end-to-end tests: users, workspaces, devices and tokens.

Mirrors sql/testing/30_world.sql (which lives only inside pgTAP transactions): two workspaces, an admin,
members with and without capabilities, an outsider, two paired proxy devices and an unpaired one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import psycopg

from busymate import tokens
from busymate.settings import Settings


@dataclass
class World:
    """Ids by name and a token per identity."""

    settings: Settings
    ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def anon_key(self) -> str:
        """The project's anon key."""
        return tokens.anon_key(self.settings.jwt_secret)

    @property
    def service_key(self) -> str:
        """The project's service_role key."""
        return tokens.service_role_key(self.settings.jwt_secret)


def user_token(settings: Settings, user_id: str, email: str, *, ttl: int = 3600, **extra: object) -> str:
    """An access token shaped like the ones Supabase Auth issues."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "role": "authenticated",
        "aud": "authenticated",
        "email": email,
        "iat": now,
        "exp": now + ttl,
        "iss": f"{settings.api_url}/auth/v1",
        "session_id": str(uuid.uuid4()),
        "app_metadata": {"provider": "email"},
        "user_metadata": {},
        **extra,
    }
    return tokens.sign_hs256(claims, settings.jwt_secret)


def add_user(settings: Settings, workspace_id: str, role: str, prefix: str = "user") -> tuple[str, str]:
    """A new user with `role`, a member of `workspace_id`, committed: (id, access token). The session's world
    stays as it is; a test that removes or demotes someone makes them here."""
    user_id = str(uuid.uuid4())
    email = f"{prefix}-{user_id[:12]}@test.busymate.local"
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, instance_id, aud, role, email, encrypted_password, "
            "email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at) values (%s, "
            "'00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', %s, '', now(), "
            "'{\"provider\": \"email\"}', '{}', now(), now())",
            (user_id, email),
        )
        conn.execute("update public.profiles set role = %s where id = %s", (role, user_id))
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)",
            (workspace_id, user_id),
        )
    return user_id, user_token(settings, user_id, email)


def make_world(settings: Settings, tag: str) -> World:
    """Create the world (names suffixed by `tag` so several worlds can share a database)."""
    world = World(settings)
    ids = world.ids
    with psycopg.connect(settings.db_url(), autocommit=False) as conn:
        for ws in ("w1", "w2"):
            ids[ws] = str(
                conn.execute(
                    "insert into public.workspaces (slug, name) values (%s, %s) returning id",
                    (f"{ws}-{tag}", f"{ws} {tag}"),
                ).fetchone()[0]  # type: ignore[index]
            )
        for name, role, ws in (
            ("admin", "admin", "w1"),
            ("member", "member", "w1"),
            ("nocaps", "viewer", "w1"),
            ("outsider", "member", "w2"),
        ):
            uid = str(uuid.uuid4())
            email = f"{name}-{tag}@test.busymate.local"
            conn.execute(
                "insert into auth.users (id, instance_id, aud, role, email, encrypted_password, "
                "email_confirmed_at, "
                "raw_app_meta_data, raw_user_meta_data, created_at, updated_at) values (%s, "
                "'00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', %s, '', now(), "
                "'{\"provider\": \"email\"}', '{}', now(), now())",
                (uid, email),
            )
            conn.execute("update public.profiles set role = %s where id = %s", (role, uid))
            conn.execute(
                "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)", (ids[ws], uid)
            )
            ids[name] = uid
            world.tokens[name] = user_token(settings, uid, email)
        conn.execute(
            "insert into public.roles (name, description, capabilities) values ('nocaps', 'none', '{}') "
            "on conflict (name) do nothing"
        )
        conn.execute("update public.profiles set role = 'nocaps' where id = %s", (ids["nocaps"],))
        for name, owner, ws, cred in (
            ("d1", "member", "w1", True),
            ("d2", "outsider", "w2", True),
            ("d_unpaired", "member", "w1", False),
        ):
            row = conn.execute(
                "insert into public.devices (workspace_id, owner_user_id, name, source) "
                "values (%s, %s, %s, 'proxy') returning uuid, null::uuid",
                (ids[ws], ids[owner], f"{name}-{tag}"),
            ).fetchone()
            assert row is not None
            if cred:  # the credential lives apart, where no API role reads it
                row = conn.execute(
                    "insert into private.device_credentials (device_uuid) values (%s) "
                    "returning device_uuid, credential_id",
                    (row[0],),
                ).fetchone()
                assert row is not None
            ids[name] = str(row[0])
            now = int(time.time())
            world.tokens[name] = tokens.sign_hs256(
                {
                    "sub": str(row[0]),
                    "role": "device",
                    "workspace_id": ids[ws],
                    "cred": str(row[1] or uuid.uuid4()),
                    "iat": now,
                    "exp": now + 3600,
                    "iss": "busymate",
                },
                settings.jwt_secret,
            )
        conn.commit()
    return world
