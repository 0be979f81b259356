"""`busymate` as a user runs it: real console script, real exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

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
        "BUSYMATE_API_PORT": str(settings.api_port),
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


def test_status_prints_the_supabase_keys(stack: Settings) -> None:
    as_json = run(stack, "status", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    values = json.loads(as_json.stdout)
    assert values["DB_URL"] == f"postgresql://postgres:postgres@127.0.0.1:{stack.db_port}/postgres"
    assert values["API_URL"] == f"http://127.0.0.1:{stack.api_port}"
    assert values["REST_URL"] == f"http://127.0.0.1:{stack.api_port}/rest/v1"
    assert values["JWT_SECRET"] == stack.jwt_secret
    # with the Supabase CLI's local secret, the keys are the ones `supabase status` prints
    assert values["ANON_KEY"] == (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9"
        ".CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
    )
    assert values["SERVICE_ROLE_KEY"].count(".") == 2
    assert values["PUBLISHABLE_KEY"].startswith("sb_publishable_")
    assert values["SECRET_KEY"].startswith("sb_secret_")
    as_env = run(stack, "status", "-o", "env")
    assert (
        f'DB_URL="postgresql://postgres:postgres@127.0.0.1:{stack.db_port}/postgres"'
        in as_env.stdout.splitlines()
    )
    pretty = run(stack, "status")
    assert re.search(r"API server +running", pretty.stdout), pretty.stdout


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


def test_start_runs_the_database_and_the_api_and_stop_stops_both(tmp_path: Path) -> None:
    settings = Settings.from_env({"BUSYMATE_PROJECT_DIR": str(PROJECT_DIR)}).with_overrides(
        state_dir=tmp_path / ".busymate", db_port=free_port(), api_port=free_port()
    )
    try:
        first = run(settings, "start")
        assert first.returncode == 0, first.stderr
        assert "(database created)" in first.stderr
        assert f"API server running on http://127.0.0.1:{settings.api_port}" in first.stderr
        keys = json.loads(run(settings, "status", "-o", "json").stdout)
        answer = httpx.get(
            f"{keys['REST_URL']}/workspaces?select=slug", headers={"apikey": keys["SERVICE_ROLE_KEY"]}
        )
        assert answer.status_code == 200, answer.text
        assert isinstance(answer.json(), list)
        again = run(settings, "start")
        assert again.returncode == 0, again.stderr
        assert "(database up to date)" in again.stderr
        db_again = run(settings, "db", "start")
        assert "already running" in db_again.stdout
    finally:
        stopped = run(settings, "stop")
        assert stopped.stdout.strip() == "API server stopped; Postgres stopped", (
            stopped.stdout + stopped.stderr
        )
        from busymate.stack.postgres import Cluster

        Cluster(settings).destroy()
    assert run(settings, "status", "-o", "json").returncode == 1
    assert run(settings, "stop").stdout.strip() == "API server was not running; Postgres was not running"


def test_a_bad_port_setting_is_reported(tmp_path: Path) -> None:
    env = {**os.environ, "BUSYMATE_PROJECT_DIR": str(PROJECT_DIR), "BUSYMATE_DB_PORT": "70000"}
    result = subprocess.run(
        [str(BUSYMATE), "db", "status"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "BUSYMATE_DB_PORT='70000' is not a TCP port" in result.stderr
