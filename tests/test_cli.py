"""`busymate` as a user runs it: real console script, real exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from busymate import tokens
from busymate.api_core import ApiRefused
from busymate.cli.common import explain
from busymate.settings import Settings
from busymate.stack.postgres import Cluster, free_port
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


@dataclass
class Started:
    """One project started by `busymate start` in a temporary state folder, on ports of its own, and what its
    first start said. The tests below share it (a start creates a cluster and applies every migration: tens of
    seconds) and run in file order: the last one stops it."""

    settings: Settings
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    settings = Settings.from_env({"BUSYMATE_PROJECT_DIR": str(PROJECT_DIR)}).with_overrides(
        state_dir=tmp_path_factory.mktemp("started") / ".busymate", db_port=free_port(), api_port=free_port()
    )
    try:
        yield Started(settings, run(settings, "start"))
    finally:
        run(settings, "stop")
        Cluster(settings).destroy()


def test_start_runs_the_database_and_the_api(started: Started) -> None:
    settings, first = started.settings, started.first
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


def test_a_bad_port_setting_is_reported(tmp_path: Path) -> None:
    env = {**os.environ, "BUSYMATE_PROJECT_DIR": str(PROJECT_DIR), "BUSYMATE_DB_PORT": "70000"}
    result = subprocess.run(
        [str(BUSYMATE), "db", "status"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "BUSYMATE_DB_PORT='70000' is not a TCP port" in result.stderr


# -- a project remembers its ports, and talks only to its own API server (issue 15, item 14) -----------------


class _Stranger(http.server.BaseHTTPRequestHandler):
    """Any HTTP server on the port a project expects (another project's `supabase start`, say)."""

    seen: list[tuple[str, str, str]] = []  # noqa: RUF012 - one list per test, reset by `stranger`

    def _answer(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(size).decode(errors="replace") if size else ""
        self.seen.append((self.command, self.path, f"{self.headers.get('authorization')} {body}"))
        payload = b'[{"id": "someone else\'s row"}]'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def stranger() -> Iterator[tuple[int, list[tuple[str, str, str]]]]:
    """A plain HTTP server on a free port, and the requests it received."""
    _Stranger.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stranger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], _Stranger.seen
    finally:
        server.shutdown()
        server.server_close()


def bare_run(state_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI from a fresh shell: no BUSYMATE_* variable but the project and state folders (and `env`)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BUSYMATE_")}
    return subprocess.run(
        [str(BUSYMATE), *args],
        capture_output=True,
        text=True,
        env={
            **clean,
            "BUSYMATE_PROJECT_DIR": str(PROJECT_DIR),
            "BUSYMATE_STATE_DIR": str(state_dir),
            "COLUMNS": "200",
            **env,
        },
        cwd=PROJECT_DIR,
        timeout=300,
        check=False,
    )


def test_a_project_on_other_ports_is_found_again_and_a_stranger_is_refused(
    started: Started, stack: Settings
) -> None:
    settings = started.settings
    assert started.first.returncode == 0, started.first.stderr
    # A new shell knows nothing of the ports: the project remembers them.
    found = bare_run(settings.state_dir, "status", "-o", "json")
    assert found.returncode == 0, found.stderr
    values = json.loads(found.stdout)
    assert values["API_URL"] == f"http://127.0.0.1:{settings.api_port}"
    assert values["DB_URL"].endswith(f"@127.0.0.1:{settings.db_port}/postgres")
    assert re.search(r"API server +running", bare_run(settings.state_dir, "status").stdout)
    assert bare_run(settings.state_dir, "devices", "list", "--json").returncode == 0
    # The environment still wins, and what answers there must be this project's server.
    with stranger() as (port, seen):
        for args in (("status",), ("status", "-o", "json"), ("devices", "list"), ("tail",)):
            refused = bare_run(settings.state_dir, *args, BUSYMATE_API_PORT=str(port))
            said = refused.stderr
            assert refused.returncode == 1, (args, refused.stdout, said)
            assert f"127.0.0.1:{port} is a server that is not Busymate's" in said, said
            assert "BUSYMATE_API_PORT" in said
            assert "someone else" not in refused.stdout + said
            assert "API URL" not in refused.stdout
            assert "Traceback" not in said
        # It was asked who it is, and nothing else: no password, no token went to it.
        assert {(method, path) for method, path, _ in seen} == {("GET", "/auth/v1/health")}
        assert all(sent == "None " for _, _, sent in seen), seen
    # Another Busymate project's server (the test session's) is refused the same way, by its id.
    other = bare_run(settings.state_dir, "devices", "list", BUSYMATE_API_PORT=str(stack.api_port))
    assert other.returncode == 1
    assert "is another Busymate project's API server" in other.stderr, other.stderr


def test_after_a_database_reset_the_local_admin_comes_back(started: Started) -> None:
    settings = started.settings
    assert started.first.returncode == 0, started.first.stderr
    anon = {"apikey": tokens.anon_key(settings.jwt_secret)}
    before = run(settings, "token", "--admin")
    assert before.returncode == 0, before.stderr
    password = json.loads((settings.state_dir / "local-admin.json").read_text())["password"]
    reset = run(settings, "db", "reset")
    assert reset.returncode == 0, reset.stderr
    after = run(settings, "token", "--admin")
    assert after.returncode == 0, after.stderr
    me = httpx.get(
        f"{settings.auth_url}/user", headers={**anon, "authorization": f"Bearer {after.stdout.strip()}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "admin@busymate.local"
    # Made again with the password it had, and as an admin: it may add a device.
    assert json.loads((settings.state_dir / "local-admin.json").read_text())["password"] == password
    added = run(settings, "devices", "add", "after reset", "--json")
    assert added.returncode == 0, added.stderr


def test_stop_stops_both_and_a_second_stop_says_so(started: Started) -> None:
    """Last of the tests on `started`: they run in file order."""
    settings = started.settings
    stopped = run(settings, "stop")
    assert stopped.stdout.strip() == "API server stopped; Postgres stopped", stopped.stdout + stopped.stderr
    assert run(settings, "status", "-o", "json").returncode == 1
    assert run(settings, "stop").stdout.strip() == "API server was not running; Postgres was not running"


# -- errors say what to do (issue 15, item 15) ---------------------------------------------------------------


def test_refusals_are_explained_by_sqlstate() -> None:
    taken = ApiRefused(
        "POST /rest/v1/rpc/x", 409, "23505", 'duplicate key value violates unique constraint "t_key"',
        "Key (slug)=(local) already exists.",
    )  # fmt: skip
    assert explain(taken) == "that value is already taken (Key (slug)=(local) already exists.)"
    denied = ApiRefused(
        "POST /rest/v1/rpc/x", 403, "42501", "only an admin may add a device", "", "Ask an admin."
    )
    assert explain(denied) == "only an admin may add a device; Ask an admin."
    odd = ApiRefused("POST /rest/v1/rpc/x", 400, "XX000", "something odd")
    assert "something odd" in explain(odd)
    assert "busymate --help" in explain(odd)
    limited = ApiRefused("POST /auth/v1/token", 429, "over_request_rate_limit", "Request rate limit reached")
    assert "wait, then try again" in explain(limited)
