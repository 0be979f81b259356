"""`busymate` as a user runs it: real console script, real exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from busymate.settings import Settings
from busymate.stack.postgres import free_port
from tests.conftest import PROJECT_DIR

BUSYMATE = Path(sys.executable).parent / "busymate"


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BUSYMATE_PROJECT_DIR": str(settings.project_dir),
        "BUSYMATE_STATE_DIR": str(settings.state_dir),
        "BUSYMATE_DB_PORT": str(settings.db_port),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(BUSYMATE), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_DIR,
        timeout=300,
        check=False,
    )


def test_status_prints_the_supabase_keys(pg: Settings) -> None:
    as_json = run(pg, "status", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "DB_URL": f"postgresql://postgres:postgres@127.0.0.1:{pg.db_port}/postgres"
    }
    as_env = run(pg, "status", "-o", "env")
    assert as_env.stdout.strip() == f'DB_URL="postgresql://postgres:postgres@127.0.0.1:{pg.db_port}/postgres"'
    pretty = run(pg, "db", "status")
    assert "running" in pretty.stdout


def test_db_test_reports_every_file_and_fails_on_a_broken_one(pg: Settings, tmp_path: Path) -> None:
    passing = run(pg, "db", "test")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "Result: PASS" in passing.stdout
    assert "# supabase/tests/database/000-lint.test.sql" in passing.stdout
    broken = tmp_path / "broken.test.sql"
    broken.write_text(
        "begin; select plan(1); select is(2, 3, 'two is three'); select * from finish(); rollback;"
    )
    failing = run(pg, "db", "test", str(broken))
    assert failing.returncode == 1
    assert "Result: FAIL" in failing.stdout
    assert "not ok 1 - two is three" in failing.stdout + failing.stderr


def test_commands_on_a_stopped_database_fail_in_one_line(tmp_path: Path) -> None:
    settings = Settings.from_env({"BUSYMATE_PROJECT_DIR": str(PROJECT_DIR)}).with_overrides(
        state_dir=tmp_path / ".busymate", db_port=free_port()
    )
    for args in (("db", "migrate"), ("db", "reset"), ("db", "test")):
        result = run(settings, *args)
        assert result.returncode == 1, args
        assert (
            result.stderr.strip() == "error: the database is not running; start it with `busymate db start`"
        )
        assert "Traceback" not in result.stdout + result.stderr
    stopped = run(settings, "db", "stop")
    assert (stopped.returncode, stopped.stdout.strip()) == (0, "Postgres was not running")
    assert run(settings, "status", "-o", "json").returncode == 1


def test_start_creates_the_database_and_a_second_start_is_harmless(tmp_path: Path) -> None:
    settings = Settings.from_env({"BUSYMATE_PROJECT_DIR": str(PROJECT_DIR)}).with_overrides(
        state_dir=tmp_path / ".busymate", db_port=free_port()
    )
    try:
        first = run(settings, "db", "start")
        assert first.returncode == 0, first.stderr
        assert f"Postgres started on 127.0.0.1:{settings.db_port} (database created)" in first.stdout
        again = run(settings, "db", "start")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert "database up to date" in again.stdout
    finally:
        assert run(settings, "db", "stop").stdout.strip() == "Postgres stopped"
        from busymate.stack.postgres import Cluster

        Cluster(settings).destroy()


def test_a_bad_port_setting_is_reported(tmp_path: Path) -> None:
    env = {**os.environ, "BUSYMATE_PROJECT_DIR": str(PROJECT_DIR), "BUSYMATE_DB_PORT": "70000"}
    result = subprocess.run(
        [str(BUSYMATE), "db", "status"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "BUSYMATE_DB_PORT='70000' is not a TCP port" in result.stderr
