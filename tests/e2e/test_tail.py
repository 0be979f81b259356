"""`busymate tail` through the real command line: live rows, filters, workspace isolation, the table, errors,
and a reconnect across a restarted API server with the missed entries backfilled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from busymate.cli import tail_feed as tail_module
from busymate.cli.common import err
from busymate.cli.tail_feed import FIREHOSE_COLUMNS, Feed
from busymate.cli.tail_filters import Filters, parse_statuses
from busymate.cli.tail_render import Printer, breakpoint_event
from busymate.project import ID_FILE
from busymate.settings import Settings
from busymate.stack.api_process import ApiServer, settings_env
from busymate.stack.postgres import free_port
from tests.conftest import second_api_server
from tests.e2e.proxy_helpers import worker_env
from tests.world import World

WORKSPACE = "w1-e2e"
WAIT = 10.0  # seconds for a line that must come
START = 20.0  # seconds for the feed to connect (the first CLI call may create the local admin)
RECONNECT = 30.0  # seconds to notice a restarted server (the client's backoff reaches 5 s)


class Tail:
    """`busymate tail ...` running in the background, its stdout and stderr read line by line."""

    def __init__(self, settings: Settings, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = {
            **os.environ,
            **settings_env(settings),
            **worker_env(settings),  # a wrong JWT secret: tail works on the URL, anon key and its session
            "COLUMNS": "200",
            **(env or {}),
        }
        self.args = args
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "busymate"), "tail", *args],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._events: queue.Queue[None] = queue.Queue()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))
            self._events.put(None)
        self._events.put(None)

    def until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"busymate tail {' '.join(self.args)}: no {what} within {timeout:.0f} s\n{self}"
                )
            with contextlib.suppress(queue.Empty):
                self._events.get(timeout=min(left, 0.5))

    def wait_err(self, text: str, timeout: float = WAIT) -> str:
        """The first stderr line containing `text`."""
        self.until(lambda: any(text in line for line in self.err), f"{text!r} on stderr", timeout)
        return next(line for line in self.err if text in line)

    def wait_out(self, text: str, timeout: float = WAIT) -> str:
        """The first stdout line containing `text`."""
        self.until(lambda: any(text in line for line in self.out), f"{text!r} on stdout", timeout)
        return next(line for line in self.out if text in line)

    def connected(self) -> Tail:
        """Wait until the feed is joined (rows written from now on must arrive)."""
        self.wait_err("connected", START)
        return self

    def records(self) -> list[dict[str, Any]]:
        """Every stdout line as JSON (--json mode prints nothing else there)."""
        return [json.loads(line) for line in list(self.out)]

    def wait_record(self, path: str, timeout: float = WAIT) -> dict[str, Any]:
        """The JSON entry whose path is `path`."""
        self.until(lambda: any(r.get("path") == path for r in self.records()), f"entry {path}", timeout)
        return next(r for r in self.records() if r.get("path") == path)

    def stop(self) -> None:
        """Ctrl-C: a clean exit with status 0 and no traceback."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"busymate tail did not stop on Ctrl-C\n{self}") from None
        time.sleep(0.1)  # let the reader threads take the last lines
        assert self.proc.returncode == 0, str(self)
        assert not any("Traceback" in line for line in self.err), str(self)

    def __str__(self) -> str:
        return "stdout:\n" + "\n".join(self.out) + "\nstderr:\n" + "\n".join(self.err)


@pytest.fixture
def tails() -> Iterator[Callable[..., Tail]]:
    """Start tails; each is stopped with Ctrl-C (and checked for a clean exit) at the end."""
    started: list[Tail] = []

    def start(settings: Settings, *args: str, env: dict[str, str] | None = None) -> Tail:
        tail = Tail(settings, *args, env=env)
        started.append(tail)
        return tail

    yield start
    for tail in started:
        if tail.proc.poll() is None:
            tail.stop()


def entry(host: str, path: str, status: int | None = 200, **extra: Any) -> dict[str, Any]:
    """One captured flow as a device uploads it."""
    return {
        "id": str(uuid.uuid4()),
        "captured_at": datetime.now(UTC).isoformat(),
        "method": "GET",
        "scheme": "https",
        "host": host,
        "port": 443,
        "path": path,
        "status": status,
        "duration_ms": 12.5,
        "response_size": 2048,
        **extra,
    }


def ingest(settings: Settings, world: World, device: str, rows: list[dict[str, Any]]) -> None:
    """Write rows as a paired device (one statement, so one firehose message)."""
    answer = httpx.post(
        f"{settings.api_url}/rest/v1/rpc/ingest_entries",
        json={"batch": rows},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {world.tokens[device]}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["inserted"] == len(rows), answer.text


def insert_as(settings: Settings, world: World, device: str, rows: list[dict[str, Any]]) -> None:
    """Rows from a device that cannot upload itself (an unpaired one), written straight into the database."""
    with psycopg.connect(settings.db_url()) as conn:
        for row in rows:
            conn.execute(
                "insert into public.entries (id, workspace_id, device_uuid, source, captured_at, method, "
                "host, path, status) values (%s, %s, %s, 'proxy', %s, %s, %s, %s, %s)",
                (
                    row["id"],
                    world.ids["w1"],
                    world.ids[device],
                    row["captured_at"],
                    row["method"],
                    row["host"],
                    row["path"],
                    row["status"],
                ),
            )


def tag() -> str:
    return uuid.uuid4().hex[:8]


# -- live rows -----------------------------------------------------------------------------------------


def test_json_rows_carry_the_device_name_and_never_another_workspace(
    stack: Settings, world: World, tails: Callable[..., Tail]
) -> None:
    t = tag()
    tail = tails(stack, "--workspace", WORKSPACE, "--json").connected()
    ingest(stack, world, "d2", [entry(f"w2-{t}.test", f"/w2-before-{t}")])
    rows = [entry(f"api-{t}.test", f"/one-{t}", 200, query="a=1"), entry(f"api-{t}.test", f"/two-{t}", 404)]
    ingest(stack, world, "d1", rows)
    first = tail.wait_record(f"/one-{t}")
    second = tail.wait_record(f"/two-{t}")
    assert list(first) == [*FIREHOSE_COLUMNS, "device_name"]
    assert first["device_name"] == "d1-e2e"
    assert first["device_uuid"] == world.ids["d1"]
    assert first["id"] == rows[0]["id"]
    assert (first["host"], first["query"], first["status"], first["response_size"]) == (
        f"api-{t}.test",
        "a=1",
        200,
        2048,
    )
    assert second["status"] == 404
    # w2 traffic written after w1's too: once the w1 row behind it has arrived, a w2 row would have come.
    ingest(stack, world, "d2", [entry(f"w2-{t}.test", f"/w2-after-{t}")])
    ingest(stack, world, "d1", [entry(f"api-{t}.test", f"/three-{t}")])
    tail.wait_record(f"/three-{t}")
    assert not [r for r in tail.records() if r["host"] == f"w2-{t}.test"], str(tail)
    assert [r["path"] for r in tail.records() if t in r["path"]] == [f"/one-{t}", f"/two-{t}", f"/three-{t}"]
    tail.stop()
    assert not any(line.startswith("{") for line in tail.err)  # notices only on stderr


def test_exit_after_prints_exactly_that_many_and_exits_0(
    stack: Settings, world: World, tails: Callable[..., Tail]
) -> None:
    t = tag()
    tail = tails(stack, "--workspace", WORKSPACE, "--json", "--host", f"n-{t}.test", "--exit-after", "2")
    tail.connected()
    ingest(stack, world, "d1", [entry(f"n-{t}.test", f"/{i}") for i in range(3)])
    assert tail.proc.wait(WAIT) == 0, str(tail)
    time.sleep(0.1)
    assert [r["path"] for r in tail.records()] == ["/0", "/1"]


def test_breakpoint_events_show_as_paused_then_continued(
    stack: Settings, world: World, tails: Callable[..., Tail]
) -> None:
    t = tag()
    tail = tails(stack, "--workspace", WORKSPACE, "--json", "--host", f"bp-{t}.test").connected()
    device = {"apikey": world.anon_key, "authorization": f"Bearer {world.tokens['d1']}"}
    paused = httpx.post(
        f"{stack.api_url}/rest/v1/breakpoint_events",
        json={
            "workspace_id": world.ids["w1"],
            "device_uuid": world.ids["d1"],
            "flow_id": f"flow-{t}",
            "phase": "request",
            "snapshot": {"method": "POST", "host": f"bp-{t}.test", "path": "/login"},
        },
        headers={**device, "prefer": "return=representation"},
    )
    assert paused.status_code == 201, paused.text
    event_id = paused.json()[0]["id"]
    admin = {"apikey": world.anon_key, "authorization": f"Bearer {world.tokens['admin']}"}
    resolved = httpx.post(
        f"{stack.api_url}/rest/v1/rpc/continue_breakpoint",
        json={"event_id": event_id, "action": "continue"},
        headers=admin,
    )
    assert resolved.status_code == 200, resolved.text
    tail.until(lambda: len(tail.records()) >= 2, "two breakpoint lines", WAIT)
    first, second = tail.records()[:2]
    assert (first["kind"], first["event"], first["id"], first["device_name"]) == (
        "breakpoint",
        "paused",
        event_id,
        "d1-e2e",
    )
    assert (first["method"], first["host"], first["path"]) == ("POST", f"bp-{t}.test", "/login")
    assert (second["kind"], second["event"], second["outcome"]) == ("breakpoint", "continued", "continued")


# -- filters -------------------------------------------------------------------------------------------


def test_host_filter_keeps_substring_and_glob_matches_only(
    stack: Settings, world: World, tails: Callable[..., Tail]
) -> None:
    t = tag()
    tail = tails(
        stack, "--workspace", WORKSPACE, "--json", "--host", f"*.glob-{t}.test", "--host", f"sub-{t}"
    )
    tail.connected()
    ingest(
        stack,
        world,
        "d1",
        [
            entry(f"api.glob-{t}.test", "/glob-hit"),
            entry(f"glob-{t}.test", "/glob-bare-miss"),  # *.x does not match x itself
            entry(f"api.glob-{t}.test.evil", "/glob-suffix-miss"),
            entry(f"www.sub-{t}.example", "/sub-hit"),
            entry(f"other-{t}.test", "/other-miss"),
        ],
    )
    ingest(stack, world, "d1", [entry(f"API.SUB-{t}.example", "/sub-last-hit")])
    tail.wait_record("/sub-last-hit")
    assert [r["path"] for r in tail.records()] == ["/glob-hit", "/sub-hit", "/sub-last-hit"]


def test_status_filter_keeps_the_classes_and_codes_asked_for(
    stack: Settings, world: World, tails: Callable[..., Tail]
) -> None:
    t = tag()
    host = f"status-{t}.test"
    tail = tails(stack, "--workspace", WORKSPACE, "--json", "--host", host, "--status", "4xx,500")
    tail.connected()
    codes = [200, 404, 302, 418, 500, 503, 399, 499]
    ingest(stack, world, "d1", [entry(host, f"/{c}", c) for c in codes])
    ingest(stack, world, "d1", [entry(host, "/failed", None, error="connection reset")])
    ingest(stack, world, "d1", [entry(host, "/last", 400)])
    tail.wait_record("/last")
    assert [r["status"] for r in tail.records()] == [404, 418, 500, 499, 400]


def test_status_error_keeps_failed_flows(stack: Settings, world: World, tails: Callable[..., Tail]) -> None:
    t = tag()
    host = f"err-{t}.test"
    tail = tails(
        stack, "--workspace", WORKSPACE, "--json", "--host", host, "--status", "error", "--status", "5xx"
    )
    tail.connected()
    ingest(
        stack, world, "d1", [entry(host, "/ok", 200), entry(host, "/reset", None, error="connection reset")]
    )
    ingest(stack, world, "d1", [entry(host, "/boom", 502)])
    tail.wait_record("/boom")
    assert [r["path"] for r in tail.records()] == ["/reset", "/boom"]


def test_device_filter_keeps_one_device(stack: Settings, world: World, tails: Callable[..., Tail]) -> None:
    t = tag()
    host = f"dev-{t}.test"
    tail = tails(stack, "--workspace", WORKSPACE, "--json", "--host", host, "--device", "d1-e2e")
    tail.connected()
    insert_as(stack, world, "d_unpaired", [entry(host, "/unpaired-miss")])
    ingest(stack, world, "d1", [entry(host, "/d1-hit")])
    insert_as(stack, world, "d_unpaired", [entry(host, "/unpaired-miss-2")])
    ingest(stack, world, "d1", [entry(host, "/d1-last")])
    tail.wait_record("/d1-last")
    assert [(r["path"], r["device_name"]) for r in tail.records()] == [
        ("/d1-hit", "d1-e2e"),
        ("/d1-last", "d1-e2e"),
    ]
    # The same device by uuid, and the other one: its rows are the ones kept now.
    by_uuid = tails(
        stack, "--workspace", WORKSPACE, "--json", "--host", host, "--device", world.ids["d_unpaired"]
    )
    by_uuid.connected()
    ingest(stack, world, "d1", [entry(host, "/d1-miss")])
    insert_as(stack, world, "d_unpaired", [entry(host, "/unpaired-hit")])
    by_uuid.wait_record("/unpaired-hit")
    assert [(r["path"], r["device_name"]) for r in by_uuid.records()] == [("/unpaired-hit", "d_unpaired-e2e")]


# -- the table -----------------------------------------------------------------------------------------


def test_table_mode_prints_a_header_and_aligned_rows(
    stack: Settings, world: World, tails: Callable[..., Tail]
) -> None:
    t = tag()
    tail = tails(stack, "--workspace", WORKSPACE, "--host", f"table-{t}.test").connected()
    header = tail.wait_out("HOST")
    for name in ("TIME", "DEVICE", "METHOD", "STATUS", "HOST", "PATH", "SIZE", "DURATION"):
        assert name in header
    ingest(
        stack,
        world,
        "d1",
        [entry(f"table-{t}.test", f"/v1/items-{t}", 201, query="page=2", method="POST", response_size=1536)],
    )
    line = tail.wait_out(f"/v1/items-{t}?page=2")
    assert f"table-{t}.test" in line
    assert "d1-e2e" in line
    assert " POST " in line
    assert " 201 " in line
    assert "1.5 KB" in line
    assert "12 ms" in line
    assert line.index("d1-e2e") == header.index("DEVICE")
    assert line.index(f"table-{t}.test") == header.index("HOST")
    assert line[:12].count(":") == 2
    assert line[8] == "."


def test_a_failed_flow_shows_its_error_in_the_table_and_in_json(
    stack: Settings, world: World, tails: Callable[..., Tail]
) -> None:
    t = tag()
    reason = f"upstream connect failed: connection refused by origin-{t}.test:443 " + "x" * 400
    table = tails(stack, "--workspace", WORKSPACE, "--host", f"fail-{t}.test").connected()
    as_json = tails(stack, "--workspace", WORKSPACE, "--host", f"fail-{t}.test", "--json").connected()
    ingest(stack, world, "d1", [entry(f"fail-{t}.test", f"/broken-{t}", None, error=reason)])
    ingest(stack, world, "d1", [entry(f"fail-{t}.test", f"/after-{t}", 200)])
    row = table.wait_out(f"/broken-{t}")
    table.wait_out(f"/after-{t}")
    assert " ERR " in row
    below = table.out[table.out.index(row) + 1]
    assert f"↳ upstream connect failed: connection refused by origin-{t}.test:443" in below
    assert len(below) <= 200  # cut to the terminal's width (COLUMNS=200)
    assert below.endswith("…")
    assert below.index("↳") == table.out[0].index("HOST")  # under the host and path
    assert as_json.wait_record(f"/broken-{t}")["error"] == reason


# -- errors --------------------------------------------------------------------------------------------


def test_a_user_without_entries_view_is_refused_in_one_line(
    stack: Settings, world: World, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(stack.state_dir / ID_FILE, state / ID_FILE)  # the same project, signed in as someone else
    (state / "session.json").write_text(
        json.dumps(
            {
                "access_token": world.tokens["nocaps"],
                "refresh_token": "unused",
                "expires_at": int(time.time()) + 3000,
                "email": "nocaps-e2e@test.busymate.local",
            }
        )
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "busymate"), "tail", "--workspace", WORKSPACE],
        env={**os.environ, **settings_env(stack), **worker_env(stack), "BUSYMATE_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 1, done
    assert "may not read the live traffic of workspace w1-e2e" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""


def test_a_server_that_does_not_answer_is_one_line(stack: Settings, tmp_path: Path) -> None:
    nobody = free_port()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "busymate"), "tail"],
        env={
            **os.environ,
            **settings_env(stack),
            **worker_env(stack),
            "BUSYMATE_URL": f"http://127.0.0.1:{nobody}",
            "BUSYMATE_API_PORT": str(nobody),
            "BUSYMATE_STATE_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 1, done
    assert "does not answer" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_bad_status_is_a_usage_error(stack: Settings) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "busymate"), "tail", "--status", "2x"],
        env={**os.environ, **settings_env(stack)},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2
    assert "is not a status" in done.stderr


# -- reconnect -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restartable(stack: Settings) -> Iterator[tuple[Settings, ApiServer]]:
    """A second API server on the session's database, which a test may stop and start again; its sessions
    last 12 s, so a tail must hand its channel fresh tokens to keep it."""
    with second_api_server(stack, "tail-restartable", jwt_expiry=12) as started:
        yield started


def test_the_feed_outlives_its_token(
    stack: Settings, world: World, tails: Callable[..., Tail], restartable: tuple[Settings, ApiServer]
) -> None:
    settings, _ = restartable
    t = tag()
    host = f"expiry-{t}.test"
    tail = tails(settings, "--workspace", WORKSPACE, "--json", "--host", host).connected()
    started = time.monotonic()
    ingest(stack, world, "d1", [entry(host, "/early")])
    tail.wait_record("/early")
    # Past the first token's expiry (12 s): without a fresh token the server closes the channel at 12 s.
    tail.until(lambda: time.monotonic() - started > 16, "16 s", 20)
    ingest(stack, world, "d1", [entry(host, "/late")])
    tail.wait_record("/late")
    assert [r["path"] for r in tail.records()] == ["/early", "/late"]
    assert not [line for line in tail.err if "expired" in line or "disconnected" in line], str(tail)


def test_a_restarted_server_is_reconnected_to_and_the_gap_backfilled(
    stack: Settings, world: World, tails: Callable[..., Tail], restartable: tuple[Settings, ApiServer]
) -> None:
    settings, server = restartable
    t = tag()
    host = f"gap-{t}.test"
    tail = tails(settings, "--workspace", WORKSPACE, "--json", "--host", host).connected()
    ingest(stack, world, "d1", [entry(host, "/before")])
    tail.wait_record("/before")
    server.stop()
    tail.wait_err("disconnected")
    # Written (through the main server, same database) while this tail's server is down.
    ingest(stack, world, "d1", [entry(host, "/gap-1"), entry(f"other-{t}.test", "/gap-filtered")])
    ingest(stack, world, "d1", [entry(host, "/gap-2", 503)])
    server.start()
    tail.wait_err("reconnected", RECONNECT)
    tail.wait_record("/gap-2")
    assert tail.wait_err("backfilled").startswith("backfilled 2 entries")
    ingest(stack, world, "d1", [entry(host, "/after")])
    tail.wait_record("/after")
    paths = [r["path"] for r in tail.records()]
    assert paths == ["/before", "/gap-1", "/gap-2", "/after"], str(tail)
    assert len({r["id"] for r in tail.records()}) == 4
    assert tail.err.index(tail.wait_err("disconnected")) < tail.err.index(tail.wait_err("reconnected"))


# -- units ---------------------------------------------------------------------------------------------


def test_statuses_parse() -> None:
    assert parse_statuses(["200", "4xx,500-599", " error "]) == ((200, 200), (400, 499), (500, 599), (-1, -1))
    for bad in ("2x", "600-500", "abc", "20"):
        with pytest.raises(ValueError, match=r"status|backwards"):
            parse_statuses([bad])


def test_filters_match() -> None:
    row = {"host": "api.example.com", "status": 404, "device_uuid": "AB-12", "error": None}
    assert Filters.parse(["*.example.com"], [], []).match(row, "pixel")
    assert not Filters.parse(["*.example.org"], [], []).match(row, "pixel")
    assert Filters.parse(["EXAMPLE"], [], []).match(row, "pixel")
    assert Filters.parse([], ["Pixel"], []).match(row, "pixel")
    assert Filters.parse([], ["ab-12"], []).match(row, "pixel")
    assert not Filters.parse([], ["other"], []).match(row, "pixel")
    assert Filters.parse([], [], ["4xx"]).match(row, None)
    assert not Filters.parse([], [], ["5xx", "error"]).match(row, None)
    assert Filters.parse([], [], ["error"]).match({**row, "status": None, "error": "reset"}, None)
    assert not Filters.parse(["zzz"], [], ["4xx"]).match(row, None)  # every option must match


def test_breakpoint_events_become_paused_and_resolved_lines() -> None:
    record = {
        "id": "e1",
        "device_uuid": "d",
        "flow_id": "f",
        "phase": "request",
        "active": True,
        "outcome": None,
        "snapshot": {"method": "GET", "host": "h.test", "path": "/p"},
    }
    paused = breakpoint_event({"operation": "INSERT", "record": record, "old_record": None})
    assert paused is not None
    assert (paused["kind"], paused["event"], paused["host"]) == ("breakpoint", "paused", "h.test")
    done = {**record, "active": False, "outcome": "continued"}
    resolved = breakpoint_event({"operation": "UPDATE", "record": done, "old_record": record})
    assert resolved is not None
    assert resolved["event"] == "continued"
    assert breakpoint_event({"operation": "UPDATE", "record": done, "old_record": done}) is None


def test_backfill_reads_pages_after_the_gap_and_skips_what_was_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backfill logic on its own: what was shown live is not shown again; pages are followed."""
    monkeypatch.setattr(tail_module, "BACKFILL_PAGE", 2)

    async def scenario() -> None:
        printed: list[str] = []

        class Capture(Printer):
            def entry(self, entry: Any, device_name: str, columns: Any) -> None:
                printed.append(str(entry["id"]))

        feed = Feed(
            Settings.from_env(),
            "ws",
            printer=Capture(True),
            filters=Filters(),
            exit_after=None,
            label="ws",
            notices=err,
        )
        base = datetime(2026, 1, 1, tzinfo=UTC)
        rows = [{"id": f"r{i}", "captured_at": (base + timedelta(seconds=i)).isoformat()} for i in range(5)]
        calls: list[dict[str, str]] = []

        async def fake_get(path: str, params: dict[str, str]) -> list[dict[str, Any]]:
            calls.append(params)
            if path.endswith("/devices"):
                return []
            offset = int(params["offset"])
            return rows[offset : offset + 2]

        feed.get = fake_get  # type: ignore[method-assign]
        feed.names["d"] = "dev"
        try:
            await feed.on_state("joined", "")
            await feed.on_broadcast(
                "ws",
                "INSERT",
                {"columns": ["id", "captured_at"], "rows": [[rows[1]["id"], rows[1]["captured_at"]]]},
            )
            await feed.on_state("disconnected", "gone")
            assert await feed.backfill() == 4
        finally:
            await feed.aclose()
        assert printed == ["r1", "r0", "r2", "r3", "r4"]
        entry_calls = [c for c in calls if "offset" in c]
        assert [c["offset"] for c in entry_calls] == ["0", "2", "4"]
        since = datetime.fromisoformat(entry_calls[0]["captured_at"].removeprefix("gt."))
        assert since == base + timedelta(seconds=1) - timedelta(seconds=5)

    asyncio.run(scenario())
