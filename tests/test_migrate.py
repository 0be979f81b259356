"""Migrations are applied and recorded exactly as the Supabase CLI does, each all or nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from busymate.errors import BusymateError
from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.db import connect, drop_database
from busymate.stack.sqlsplit import split_statements
from tests.conftest import PROJECT_DIR

FIRST = """-- a header comment
create table public.things (id integer primary key, note text default 'a; b');
create function public.thing_count() returns bigint language plpgsql as $body$
begin
    return (select count(*) from public.things); -- a semicolon inside a body
end;
$body$;
"""
SECOND = "alter table public.things add column size integer;\n"
BROKEN = "create table public.half (id integer);\n\ninsert into public.missing\nvalues (1);\n"
LATER = "create table public.later (id integer);\n"


@pytest.fixture
def project(pg: Settings, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    """A project with its own migrations folder and a fresh database in the session cluster."""
    (tmp_path / "supabase" / "migrations").mkdir(parents=True)
    (tmp_path / "supabase" / "config.toml").write_text("")
    (tmp_path / "sql").symlink_to(PROJECT_DIR / "sql")
    settings = pg.with_overrides(project_dir=tmp_path)
    database = f"migrate_{tmp_path.name[-12:].replace('-', '_').lower()}"
    migrate.recreate_database(settings, database)
    migrate.apply_platform(settings, database)
    yield settings, database
    with connect(settings, database="template1", autocommit=True) as conn:
        drop_database(conn, database)


def _add(settings: Settings, name: str, body: str) -> None:
    (settings.migrations_dir / name).write_text(body)


def _history(settings: Settings, database: str) -> list[tuple[object, ...]]:
    with connect(settings, user="postgres", database=database) as conn:
        return conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations order by version"
        ).fetchall()


def test_migrations_apply_in_order_and_are_recorded_like_the_cli(project: tuple[Settings, str]) -> None:
    settings, database = project
    _add(settings, "20260102000000_add_size.sql", SECOND)
    _add(settings, "20260101000000_create_things.sql", FIRST)
    lines: list[str] = []
    assert migrate.migrate(settings, database, progress=lines.append) == ["20260101000000", "20260102000000"]
    assert lines == ["applied 20260101000000_create_things.sql", "applied 20260102000000_add_size.sql"]
    history = _history(settings, database)
    assert [(v, n) for v, n, _ in history] == [
        ("20260101000000", "create_things"),
        ("20260102000000", "add_size"),
    ]
    assert history[0][2] == [s.text for s in split_statements(FIRST)]
    assert len(split_statements(FIRST)) == 2, "a table and a function, the body kept whole"
    with connect(settings, user="postgres", database=database) as conn:
        row = conn.execute(
            "select public.thing_count(), owner from (select tableowner as owner "
            "from pg_tables where tablename = 'things') t"
        ).fetchone()
    assert row == (0, "postgres"), "migrations run as postgres, as the Supabase CLI runs them"
    assert migrate.migrate(settings, database) == [], "a second run applies nothing"


def test_a_failing_migration_changes_nothing_and_says_where(project: tuple[Settings, str]) -> None:
    settings, database = project
    _add(settings, "20260101000000_create_things.sql", FIRST)
    _add(settings, "20260103000000_broken.sql", BROKEN)
    _add(settings, "20260104000000_later.sql", LATER)
    with pytest.raises(
        BusymateError, match=r'20260103000000_broken\.sql, line 3: relation "public\.missing"'
    ):
        migrate.migrate(settings, database)
    assert [v for v, _, _ in _history(settings, database)] == ["20260101000000"]
    with connect(settings, user="postgres", database=database) as conn:
        tables = {r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public'")}
    assert tables == {"things"}, "the broken migration's first statement rolled back and later ones never ran"


def test_misnamed_and_duplicate_migrations_are_refused(project: tuple[Settings, str]) -> None:
    settings, database = project
    _add(settings, "create_things.sql", FIRST)
    with pytest.raises(BusymateError, match=r"named <timestamp>_<name>\.sql"):
        migrate.migrate(settings, database)
    (settings.migrations_dir / "create_things.sql").unlink()
    _add(settings, "20260101000000_a.sql", SECOND)
    _add(settings, "20260101000000_b.sql", SECOND)
    with pytest.raises(BusymateError, match="share version 20260101000000"):
        migrate.migrate(settings, database)


def test_the_platform_layer_applies_twice(project: tuple[Settings, str]) -> None:
    settings, database = project
    migrate.apply_platform(settings, database)
    with connect(settings, database=database) as conn:
        parts = conn.execute(
            "select count(*) from pg_inherits where inhparent = 'realtime.messages'::regclass"
        ).fetchone()
        pubs = conn.execute(
            "select count(*) from pg_publication where pubname = 'supabase_realtime'"
        ).fetchone()
    assert parts is not None
    assert int(str(parts[0])) >= 6, "default plus yesterday to three days ahead"
    assert pubs == (1,)


def test_reset_rebuilds_from_nothing_and_runs_the_seed(pg: Settings) -> None:
    with connect(pg, user="postgres") as conn:
        conn.execute("create table public.leftover (id integer)")
        conn.commit()
    started = time.perf_counter()
    seconds = migrate.reset(pg)
    print(f"\nbusymate db reset: {seconds:.2f} s ({time.perf_counter() - started:.2f} s wall)")
    with connect(pg, user="postgres") as conn:
        assert conn.execute("select to_regclass('public.leftover')").fetchone() == (None,)
        seeded = conn.execute("select path from supabase_migrations.seed_files").fetchall()
        roles = conn.execute("select name, grants_all from public.roles order by name").fetchall()
        workspaces = conn.execute("select slug from public.workspaces").fetchall()
    assert seeded == [("supabase/seed.sql",)]
    assert roles == [("admin", True), ("member", False), ("viewer", False)]
    assert workspaces == [("local",)]
    assert migrate.ensure_ready(pg) == "up to date"


def test_a_refused_connection_is_one_line(pg: Settings) -> None:
    closed = pg.with_overrides(db_port=1)
    with pytest.raises(BusymateError, match=r"cannot reach Postgres at 127\.0\.0\.1:1 .*busymate db start"):
        migrate.migrate(closed)
    assert psycopg  # the driver is what reports the refusal
