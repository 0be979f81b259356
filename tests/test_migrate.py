"""Migrations are applied and recorded exactly as the Supabase CLI does, each all or nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from busymate.errors import BusymateError
from busymate.settings import Settings
from busymate.stack import ephemeral, migrate
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


def _copy_project_migrations(settings: Settings) -> list[Path]:
    """The project's own migrations, copied into the fixture's folder (the real files are never touched)."""
    copied = []
    for path in sorted((PROJECT_DIR / "supabase" / "migrations").glob("*.sql")):
        target = settings.migrations_dir / path.name
        shutil.copyfile(path, target)
        copied.append(target)
    return copied


def _tables(settings: Settings, database: str) -> set[str]:
    with connect(settings, user="postgres", database=database) as conn:
        return {
            str(r[0]) for r in conn.execute("select tablename from pg_tables where schemaname = 'public'")
        }


def test_an_edited_applied_migration_is_refused_and_nothing_is_applied(project: tuple[Settings, str]) -> None:
    settings, database = project
    copied = _copy_project_migrations(settings)
    assert len(migrate.migrate(settings, database)) == len(copied)
    edited = copied[len(copied) // 2]
    original = edited.read_bytes()
    edited.write_bytes(original + b"-- one comment more is a change too\n")
    _add(settings, "29991231000000_later.sql", LATER)
    history = _history(settings, database)
    with pytest.raises(BusymateError) as refused:
        migrate.migrate(settings, database)
    message = str(refused.value)
    assert f"supabase/migrations/{edited.name}: changed since it was applied" in message
    for advice in ("restore the file", "busymate db reset", "a new migration"):
        assert advice in message
    assert _history(settings, database) == history, "nothing recorded"
    assert "later" not in _tables(settings, database), "the pending migration was not applied"
    edited.write_bytes(original)
    assert migrate.migrate(settings, database) == ["29991231000000"]
    assert "later" in _tables(settings, database)


def test_rows_without_a_checksum_get_one_and_the_supabase_cli_still_reads_and_writes_the_history(
    project: tuple[Settings, str],
) -> None:
    settings, database = project
    _add(settings, "20260101000000_create_things.sql", FIRST)
    _add(settings, "20260102000000_add_size.sql", SECOND)
    migrate.migrate(settings, database)
    with connect(settings, user="postgres", database=database) as conn:
        # As before checksums existed, and after `supabase db push`: history rows with no checksum of ours.
        conn.execute("delete from supabase_migrations.busymate_checksums")
        conn.commit()
    second = settings.migrations_dir / "20260102000000_add_size.sql"
    second.write_text(SECOND + "-- edited before its checksum was recorded\n")
    assert migrate.migrate(settings, database) == [], "no refusal: there was nothing to compare with"
    assert _checksums(settings, database) == {
        "20260101000000": hashlib.sha256(FIRST.encode()).hexdigest(),
        "20260102000000": hashlib.sha256(second.read_bytes()).hexdigest(),
    }
    second.write_text(SECOND)
    with pytest.raises(BusymateError, match=r"20260102000000_add_size\.sql: changed since it was applied"):
        migrate.migrate(settings, database)
    second.write_text(SECOND + "-- edited before its checksum was recorded\n")
    # The statements the Supabase CLI runs on its history (supabase/cli, pkg/migration/history.go) still work
    # and its table keeps exactly its own columns.
    pushed = settings.migrations_dir / "20260103000000_pushed.sql"
    pushed.write_text("select 1;\n")
    _supabase_cli(settings, database, "INSERT", "20260103000000")
    with connect(settings, user="postgres", database=database) as conn:
        rows = conn.execute(
            "SELECT version, coalesce(name, '') as name, statements "
            "FROM supabase_migrations.schema_migrations"
        ).fetchall()
        columns = conn.execute(
            "select array_agg(column_name::text order by column_name) from information_schema.columns "
            "where table_schema = 'supabase_migrations' and table_name = 'schema_migrations'"
        ).fetchone()
    assert len(rows) == 3
    assert columns == (["name", "statements", "version"],)
    assert migrate.migrate(settings, database) == []
    assert set(_checksums(settings, database)) == {"20260101000000", "20260102000000", "20260103000000"}
    # A version it reverts (`supabase migration repair --status reverted`) loses our checksum on the next run,
    # so pushing that version again (edited) is not mistaken for an edit of what busymate applied.
    _supabase_cli(settings, database, "DELETE", "20260103000000")
    pushed.unlink()
    assert migrate.migrate(settings, database) == []
    assert set(_checksums(settings, database)) == {"20260101000000", "20260102000000"}
    pushed.write_text("select 2;\n")
    _supabase_cli(settings, database, "INSERT", "20260103000000")
    assert migrate.migrate(settings, database) == []
    assert _checksums(settings, database)["20260103000000"] == hashlib.sha256(b"select 2;\n").hexdigest()


def test_a_database_that_applied_files_now_gone_is_told_to_reset(project: tuple[Settings, str]) -> None:
    settings, database = project
    _add(settings, "20260101000000_create_things.sql", FIRST)
    _add(settings, "20260102000000_add_size.sql", SECOND)
    migrate.migrate(settings, database)
    # The two are consolidated into one final-form migration under a new version, as issue 16 did.
    for path in settings.migrations_dir.glob("*.sql"):
        path.unlink()
    _add(settings, "20260201000000_create_things.sql", FIRST + SECOND)
    history = _history(settings, database)
    with pytest.raises(BusymateError) as refused:
        migrate.migrate(settings, database)
    message = str(refused.value)
    assert message.startswith(
        "this database applied migrations that are not in supabase/migrations: "
        "20260101000000_create_things.sql, 20260102000000_add_size.sql; nothing was migrated."
    )
    assert "busymate db reset" in message
    assert _history(settings, database) == history, "nothing recorded, nothing applied"
    migrate.recreate_database(settings, database)
    migrate.apply_platform(settings, database)
    assert migrate.migrate(settings, database) == ["20260201000000"], "after a reset the new file applies"


def _checksums(settings: Settings, database: str) -> dict[str, str]:
    with connect(settings, user="postgres", database=database) as conn:
        rows = conn.execute("select version, sha256 from supabase_migrations.busymate_checksums").fetchall()
    return {str(version): str(sha) for version, sha in rows}


def _supabase_cli(settings: Settings, database: str, what: str, version: str) -> None:
    """What `supabase db push` (INSERT) or `supabase migration repair --status reverted` (DELETE) run."""
    with connect(settings, user="postgres", database=database) as conn:
        conn.execute("SET lock_timeout = '4s'")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations "
            "(version text NOT NULL PRIMARY KEY)"
        )
        conn.execute("ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text")
        if what == "INSERT":
            conn.execute(
                "INSERT INTO supabase_migrations.schema_migrations(version, name, statements) "
                "VALUES(%s, %s, %s)",
                (version, "pushed", ["select 1"]),
            )
        else:
            conn.execute(
                "DELETE FROM supabase_migrations.schema_migrations WHERE version = ANY(%s)", ([version],)
            )
        conn.commit()


def test_busymate_db_migrate_refuses_an_edited_migration_in_one_line(tmp_path: Path) -> None:
    project_dir = tmp_path / "project"
    shutil.copytree(
        PROJECT_DIR / "supabase", project_dir / "supabase", ignore=shutil.ignore_patterns("tests")
    )
    (project_dir / "sql").symlink_to(PROJECT_DIR / "sql")
    with ephemeral.ephemeral_cluster(project_dir, tmp_path / ".busymate") as settings:
        migrate.reset(settings)
        edited = sorted(settings.migrations_dir.glob("*.sql"))[0]
        original = edited.read_bytes()
        edited.write_bytes(original.replace(b"\n", b"\n\n", 1))
        (settings.migrations_dir / "29991231000000_later.sql").write_text(LATER)
        env = {
            **os.environ,
            "BUSYMATE_PROJECT_DIR": str(settings.project_dir),
            "BUSYMATE_STATE_DIR": str(settings.state_dir),
            "BUSYMATE_DB_PORT": str(settings.db_port),
            "COLUMNS": "200",
        }
        command = [str(Path(sys.executable).parent / "busymate"), "db", "migrate"]
        refused = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stderr.startswith(
            f"error: supabase/migrations/{edited.name}: changed since it was applied"
        )
        assert "busymate db reset" in refused.stderr
        assert "Traceback" not in refused.stdout + refused.stderr
        assert "later" not in _tables(settings, settings.db_name)
        edited.write_bytes(original)
        applied = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert applied.returncode == 0, applied.stderr
        assert "applied 29991231000000_later.sql" in applied.stdout
        assert "later" in _tables(settings, settings.db_name)
        # A database built from migration files that were since consolidated away: one line naming `db reset`.
        edited.rename(edited.with_name("29991231000001_consolidated.sql"))
        gone = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert gone.returncode == 1, gone.stdout + gone.stderr
        assert gone.stderr.startswith(
            f"error: this database applied migrations that are not in supabase/migrations: {edited.name}; "
        )
        assert "run `busymate db reset`" in gone.stderr
        assert "Traceback" not in gone.stdout + gone.stderr
