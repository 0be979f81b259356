"""`busymate up` on a machine with nothing running: it starts Postgres, the API server and the proxy, makes
the local admin and a proxy device for this machine, prints where everything is, shows a request made through
the printed proxy port in its live feed, and Ctrl-C stops everything it started."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from busymate.stack import ephemeral
from busymate.stack.api_process import ApiServer, settings_env
from busymate.stack.postgres import Cluster, free_port, port_is_free
from tests.conftest import PROJECT_DIR
from tests.e2e.proxy_helpers import free_port_block, until


class Lines:
    """A stream's lines, collected by a thread."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def test_busymate_up_runs_the_main_job_and_ctrl_c_stops_what_it_started(tmp_path: Path) -> None:
    settings = ephemeral.settings_for(PROJECT_DIR, tmp_path / ".busymate").with_overrides(
        api_port=free_port()
    )
    pool = free_port_block(5)
    env = {
        **os.environ,
        **settings_env(settings),
        "BUSYMATE_PROXY_PORTS": f"{pool.start}-{pool.stop - 1}",
        "COLUMNS": "160",
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "busymate"), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        until(
            lambda: "Following the live feed" in out.text or proc.poll() is not None,
            "busymate up to be ready",
            240,
            0.2,
        )
        assert proc.poll() is None, f"{out.text}\n{err.text}"
        text = out.text
        for shown in ("API URL", "anon key", "service_role key", "admin@busymate.local", "CA certificate"):
            assert shown in text, text
        dashboard = re.search(r"Dashboard\s+(http://127\.0\.0\.1:\d+/)", text)
        assert dashboard is not None, text
        page = httpx.get(dashboard.group(1), headers={"accept": "text/html"}, timeout=10)
        assert page.status_code == 200, page.text[:300]
        assert "<html" in page.text.lower(), page.text[:300]
        admin = json.loads((settings.state_dir / "local-admin.json").read_text())
        assert admin["password"] in text
        match = re.search(r"proxy\s+http://127\.0\.0\.1:(\d+)", text)
        assert match is not None, text
        port = int(match.group(1))
        assert port == pool.start
        ca_file = settings.state_dir / "proxy" / "mitmproxy-ca-cert.pem"
        assert str(ca_file) in text
        assert f"curl --proxy http://127.0.0.1:{port} --cacert {ca_file}" in text
        assert "Made the proxy device 'this machine'" in err.text

        until(lambda: "connected: following workspace local" in err.text, "the feed to connect", 30)
        # The curl line's offline twin: through the printed proxy port to a local origin, into the live feed.
        (tmp_path / "origin").mkdir()
        (tmp_path / "origin" / "health").write_text("ok")
        origin = ThreadingHTTPServer(
            ("127.0.0.1", 0), lambda *a: SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "origin"))
        )
        threading.Thread(target=origin.serve_forever, daemon=True).start()
        proxied = f"http://127.0.0.1:{origin.server_address[1]}/health?via=proxy"
        health = httpx.get(proxied, proxy=f"http://127.0.0.1:{port}", timeout=10)
        origin.shutdown()
        assert health.status_code == 200
        # The stack's own API is not reachable through a capture port (docs/proxy.md).
        api = httpx.get(f"{settings.api_url}/auth/v1/health", proxy=f"http://127.0.0.1:{port}", timeout=10)
        assert api.status_code == 403

        def feed() -> list[str]:
            return out.lines[
                next(i for i, line in enumerate(out.lines) if "Following the live feed" in line) :
            ]

        until(
            lambda: any("/health" in line and "200" in line for line in feed()),
            f"the request in the live feed:\n{out.text}\n{err.text}",
            15,
        )
        row = next(line for line in feed() if "/health" in line and "200" in line)
        assert "this machine" in row
        assert "GET" in row
        assert "200" in row

        # `busymate status` from another shell shows the proxy beside the database and the API server.
        status = subprocess.run(
            [str(Path(sys.executable).parent / "busymate"), "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert re.search(r"Proxy +running \(pid \d+\)", status.stdout), status.stdout
        assert re.search(rf"Proxy ports +{port} \(this machine\)", status.stdout), status.stdout
        assert str(settings.state_dir / "proxy.log") in status.stdout
        as_json = subprocess.run(
            [str(Path(sys.executable).parent / "busymate"), "status", "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert json.loads(as_json.stdout)["PROXY_PORTS"] == str(port)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, err.text
    finally:
        if proc.poll() is None:  # a failure above: leave nothing running
            proc.kill()
            proc.wait()
            subprocess.run(
                [str(Path(sys.executable).parent / "busymate"), "stop"], env=env, timeout=120, check=False
            )
    assert "Stopped what `busymate up` started: proxy, api, postgres" in err.text
    assert port_is_free("127.0.0.1", settings.api_port)
    assert port_is_free("127.0.0.1", settings.db_port)
    assert port_is_free("127.0.0.1", port)
    assert not (settings.state_dir / "proxy" / "proxy.json").exists()


@pytest.mark.parametrize("how", ["ctrl-c with the reader gone", "hang-up"])
def test_busymate_up_stops_everything_when_its_output_is_gone(tmp_path: Path, how: str) -> None:
    """`make up 2>&1 | tee up.log`, then Ctrl-C: tee dies with the same signal, so busymate up stops with
    nobody reading its output. Or the terminal closes (SIGHUP). Nothing it started may be left running."""
    settings = ephemeral.settings_for(PROJECT_DIR, tmp_path / ".busymate").with_overrides(
        api_port=free_port()
    )
    pool = free_port_block(3)
    env = {
        **os.environ,
        **settings_env(settings),
        "BUSYMATE_PROXY_PORTS": f"{pool.start}-{pool.stop - 1}",
        "COLUMNS": "160",
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "busymate"), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # `2>&1 | tee`: one pipe
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a shell pipeline's
    )
    assert proc.stdout is not None
    seen: list[str] = []
    pids: dict[str, int] = {}
    try:
        for raw in proc.stdout:
            seen.append(raw.decode(errors="replace"))
            if "Following the live feed" in seen[-1]:
                break
        assert proc.poll() is None, "".join(seen)
        pids["api"] = ApiServer(settings).pid() or 0
        pids["postgres"] = Cluster(settings).status().pid or 0
        pids["proxy"] = json.loads((settings.state_dir / "proxy" / "proxy.json").read_text())["pid"]
        assert all(pids.values()), pids
        proc.stdout.close()  # the reader has gone: every write to the pipe now fails
        if how == "hang-up":
            proc.send_signal(signal.SIGHUP)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # pg_ctl stop returns once the postmaster removed its pid file, a moment before it exits
        with contextlib.suppress(AssertionError):
            until(lambda: not any(_alive(pid) for pid in pids.values()), "everything to exit", 15)
        leftover = [name for name, pid in pids.items() if _alive(pid)]
        if leftover:  # leave nothing behind for the next test, then fail
            subprocess.run(
                [str(Path(sys.executable).parent / "busymate"), "stop"], env=env, timeout=120, check=False
            )
    assert not leftover, f"still running after busymate up ended: {leftover}\n{''.join(seen)}"
    assert port_is_free("127.0.0.1", settings.api_port)
    assert port_is_free("127.0.0.1", settings.db_port)
    assert port_is_free("127.0.0.1", pool.start)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
