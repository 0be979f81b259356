"""Lay down the platform layer, apply migrations and the seed, and rebuild a database from nothing."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from busymate.errors import BusymateError
from busymate.settings import Settings
from busymate.stack.db import connect, create_database, database_exists, drop_database
from busymate.stack.postgres import BOOTSTRAP_USER
from busymate.stack.sqlsplit import Statement, split_statements

MIGRATION_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>.+)\.sql$")
# Login roles of the platform layer; each gets the project's database password.
LOGIN_ROLES = ("postgres", "authenticator", "supabase_auth_admin", BOOTSTRAP_USER)
ROLES_FILE = "00_roles.sql"
APP_USER = "postgres"

type Conn = psycopg.Connection[tuple[object, ...]]
type Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Migration:
    """One file of supabase/migrations, named `<version>_<name>.sql` as the Supabase CLI expects."""

    version: str
    name: str
    path: Path

    @property
    def statements(self) -> list[Statement]:
        """The file's statements, split as the Supabase CLI records them."""
        return split_statements(self.path.read_text())


def list_migrations(folder: Path) -> list[Migration]:
    """The migrations in `folder`, ordered by version; a misnamed .sql file is an error."""
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise BusymateError(
                f"{path.name}: migration files are named <timestamp>_<name>.sql "
                "(e.g. 20260101000000_create_x.sql)"
            )
        found.append(Migration(version=match["version"], name=match["name"], path=path))
    versions = [m.version for m in found]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise BusymateError(f"two migrations share version {duplicates[0]}; give one a new timestamp")
    return sorted(found, key=lambda m: m.version)


def _where(path: Path, statement: Statement, exc: psycopg.Error) -> str:
    line = statement.line
    position = getattr(exc.diag, "statement_position", None)
    if position and str(position).isdigit():
        line += statement.text[: int(str(position)) - 1].count("\n")
    message = (exc.diag.message_primary or str(exc)).strip()
    return f"{path.name}, line {line}: {message}"


def run_script(conn: Conn, path: Path, statements: Iterable[Statement] | None = None) -> None:
    """Execute a script statement by statement inside the caller's transaction."""
    for statement in statements if statements is not None else split_statements(path.read_text()):
        if statement.text.startswith("\\"):
            raise BusymateError(f"{path.name}, line {statement.line}: psql meta-commands are not supported")
        try:
            conn.execute(statement.text.encode())
        except psycopg.Error as exc:
            raise BusymateError(_where(path, statement, exc)) from None


def platform_files(settings: Settings) -> list[Path]:
    """The platform layer's scripts in the order they apply."""
    files = sorted(settings.platform_dir.glob("*.sql"))
    if not files:
        raise BusymateError(f"no platform SQL found in {settings.platform_dir}")
    return files


def apply_roles(settings: Settings, conn: Conn) -> None:
    """Create the cluster-wide roles and give the login roles the project's password."""
    run_script(conn, settings.platform_dir / ROLES_FILE)
    for role in LOGIN_ROLES:
        conn.execute(
            sql.SQL("alter role {} with password {}").format(
                sql.Identifier(role), sql.Literal(settings.db_password)
            )
        )


def apply_platform(settings: Settings, database: str) -> None:
    """Lay the Supabase platform layer on `database`, idempotently, as the bootstrap superuser."""
    with connect(settings, database=database) as conn, conn.transaction():
        apply_roles(settings, conn)
        for path in platform_files(settings):
            if path.name != ROLES_FILE:
                run_script(conn, path)


_HISTORY = (
    "create schema if not exists supabase_migrations",
    "create table if not exists supabase_migrations.schema_migrations (version text not null primary key)",
    "alter table supabase_migrations.schema_migrations add column if not exists statements text[]",
    "alter table supabase_migrations.schema_migrations add column if not exists name text",
    "create table if not exists supabase_migrations.seed_files "
    "(path text not null primary key, hash text not null)",
    # Ours, beside the Supabase CLI's tables (whose columns it alone defines): each applied file's SHA-256.
    "create table if not exists supabase_migrations.busymate_checksums "
    "(version text not null primary key, sha256 text not null)",
)


def checksum(path: Path) -> str:
    """SHA-256 of a migration file's bytes, as recorded when it is applied."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def applied_versions(conn: Conn) -> dict[str, str | None]:
    """Versions recorded in the Supabase CLI's history table, each with the checksum we recorded (None when
    the Supabase CLI applied it or it predates checksums)."""
    with conn.transaction():
        for statement in _HISTORY:
            conn.execute(statement.encode())
    rows = conn.execute(
        "select m.version, c.sha256 from supabase_migrations.schema_migrations m "
        "left join supabase_migrations.busymate_checksums c using (version)"
    ).fetchall()
    return {str(version): None if sha is None else str(sha) for version, sha in rows}


def _shown(settings: Settings, path: Path) -> str:
    return (
        str(path.relative_to(settings.project_dir))
        if path.is_relative_to(settings.project_dir)
        else str(path)
    )


def validate(settings: Settings, migrations: list[Migration], applied: dict[str, str | None]) -> None:
    """Refuse when an applied migration's file no longer has the checksum recorded when it was applied."""
    changed = [
        m for m in migrations if applied.get(m.version) is not None and checksum(m.path) != applied[m.version]
    ]
    if not changed:
        return
    names = ", ".join(_shown(settings, m.path) for m in changed)
    it = "it was" if len(changed) == 1 else "they were"
    raise BusymateError(
        f"{names}: changed since {it} applied (the file's SHA-256 differs from the one recorded then); "
        "nothing was migrated. An applied migration never changes: restore the file (e.g. `git checkout -- "
        f"{_shown(settings, changed[0].path)}`), or on a development database run `busymate db reset`, "
        "or put the change in a new migration."
    )


def refuse_missing(
    settings: Settings, conn: Conn, migrations: list[Migration], applied: dict[str, str | None]
) -> None:
    """Refuse when the database applied migrations whose files are gone (say, after a consolidation)."""
    missing = sorted(set(applied) - {m.version for m in migrations})
    if not missing:
        return
    rows = conn.execute(
        "select version, coalesce(name, '') from supabase_migrations.schema_migrations "
        "where version = any(%s)",
        (missing,),
    ).fetchall()
    names = {str(version): str(name) for version, name in rows}
    listed = [f"{v}_{names[v]}.sql" if names.get(v) else v for v in missing]
    shown = ", ".join(listed[:3]) + (f" and {len(listed) - 3} more" if len(listed) > 3 else "")
    folder = _shown(settings, settings.migrations_dir)
    raise BusymateError(
        f"this database applied migrations that are not in {folder}: {shown}; "
        "nothing was migrated. They were replaced (consolidated) or deleted: on a development database run "
        "`busymate db reset` to rebuild it from the files as they are, or restore the missing files."
    )


def migrate(settings: Settings, database: str | None = None, progress: Progress | None = None) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; returns the versions applied.

    First, as Flyway's `validate` does, refuse without applying anything when an applied migration's file
    changed or is gone; applied rows without a checksum (the Supabase CLI's, or older ones) get the file's
    recorded."""
    done: list[str] = []
    with connect(settings, user=APP_USER, database=database) as conn:
        already = applied_versions(conn)
        migrations = list_migrations(settings.migrations_dir)
        refuse_missing(settings, conn, migrations, already)
        validate(settings, migrations, already)
        with conn.transaction():
            # A version the Supabase CLI reverted (`migration repair`) leaves no stale checksum behind.
            conn.execute(
                "delete from supabase_migrations.busymate_checksums c where not exists "
                "(select from supabase_migrations.schema_migrations m where m.version = c.version)"
            )
            for migration in migrations:
                if migration.version in already and already[migration.version] is None:
                    _record_checksum(conn, migration)
        for migration in migrations:
            if migration.version in already:
                continue
            statements = migration.statements
            with conn.transaction():
                run_script(conn, migration.path, statements)
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name, statements) "
                    "values (%s, %s, %s)",
                    (migration.version, migration.name, [s.text for s in statements]),
                )
                _record_checksum(conn, migration)
            done.append(migration.version)
            if progress:
                progress(f"applied {migration.path.name}")
        # Tell a running REST gateway to reload its schema cache, as PostgREST listens for.
        conn.execute("notify pgrst, 'reload schema'")
    return done


def _record_checksum(conn: Conn, migration: Migration) -> None:
    conn.execute(
        "insert into supabase_migrations.busymate_checksums (version, sha256) values (%s, %s) "
        "on conflict (version) do update set sha256 = excluded.sha256",
        (migration.version, checksum(migration.path)),
    )


def seed(settings: Settings, database: str | None = None) -> bool:
    """Run supabase/seed.sql if it exists, recording its hash as the Supabase CLI does."""
    path = settings.seed_file
    if not path.is_file():
        return False
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with connect(settings, user=APP_USER, database=database) as conn, conn.transaction():
        run_script(conn, path)
        conn.execute(
            "insert into supabase_migrations.seed_files (path, hash) values (%s, %s) "
            "on conflict (path) do update set hash = excluded.hash",
            ("supabase/seed.sql", digest),
        )
    return True


def recreate_database(settings: Settings, name: str) -> None:
    """Drop and create `name` owned by the app user, the roles laid down first."""
    with connect(settings, database="template1", autocommit=True) as conn:
        with conn.transaction():
            apply_roles(settings, conn)
        drop_database(conn, name)
        create_database(conn, name, owner=APP_USER)


def reset(settings: Settings, progress: Progress | None = None) -> float:
    """Rebuild the project database from nothing: platform, migrations, seed. Returns seconds taken."""
    started = time.perf_counter()
    recreate_database(settings, settings.db_name)
    apply_platform(settings, settings.db_name)
    migrate(settings, progress=progress)
    seed(settings)
    mark_platform(settings, settings.db_name)
    return time.perf_counter() - started


def ensure_ready(settings: Settings, progress: Progress | None = None) -> str:
    """After a start: build the database on first run, else apply what is pending. Says which."""
    with connect(settings, database="template1", autocommit=True) as conn:
        exists = database_exists(conn, settings.db_name)
        ready = False
        if exists:
            row = conn.execute(
                "select shobj_description(oid, 'pg_database') from pg_database where datname = %s",
                (settings.db_name,),
            ).fetchone()
            ready = bool(row and row[0] == PLATFORM_MARK)
    if not ready:
        reset(settings, progress=progress)
        return "created"
    apply_platform(settings, settings.db_name)
    applied = migrate(settings, progress=progress)
    return f"migrated {len(applied)}" if applied else "up to date"


PLATFORM_MARK = "busymate: platform layer applied"


def mark_platform(settings: Settings, database: str) -> None:
    """Label a database as carrying the platform layer, so a restart only migrates it."""
    with connect(settings, database="template1", autocommit=True) as conn:
        conn.execute(
            sql.SQL("comment on database {} is {}").format(
                sql.Identifier(database), sql.Literal(PLATFORM_MARK)
            )
        )
