"""bmc's cost to the browser, and `/functions/v1/ingest` beside `rpc/ingest_entries`, in the same run.

(i) Page load. A local page (a threaded HTTP/1.1 server in this process) makes REQUESTS (200) requests: the
    document, then 199 `fetch()`es of small JSON answers, six at a time as Chromium allows per host. The
    page measures itself: from its navigation start until every fetch has answered (`performance.now()`),
    posts the figure back, and loads itself again, LOADS times per browser. A round starts headless Chromium
    twice on the page, once plain (`chromium --headless=new URL`) and once under `bmc launch --headless URL`
    (capture on, bodies on, every request spooled and posted to `/functions/v1/ingest`), in alternating
    order; the first load of each browser is a warm-up. Figure: the median page-load time with bmc beside
    the median without (goal: under 1.2x). After every bmc run, every request of its loads must be stored
    (counted in the database).
(ii) Ingest. ROWS rows in batches of BATCH, posted one batch at a time under the same device token, to
    `/functions/v1/ingest` (`{"batch": [...]}`) and to `/rest/v1/rpc/ingest_entries` direct, alternating for
    ROUNDS rounds. Figure: rows/s through the function beside rows/s direct (goal: at least 0.8).
(iii) The floor: the same page under a bare CDP client that only attaches, sends `Network.enable` and drops
    every event, once per round, beside the plain runs: what Chromium itself pays for reporting the network to
    any DevTools client (the Network panel, Playwright, bmc), which no capture can go under.

Prints one JSON line per figure; runs on a throw-away cluster and API server. BUSYMATE_BENCH_ROUNDS and
BUSYMATE_BENCH_LOADS change ROUNDS and LOADS.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import psycopg
from websockets.asyncio.client import connect

from busymate import tokens
from busymate.cdp_capture import launch_chromium
from busymate.cli.session import acting_token
from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.api_process import ApiServer, settings_env
from busymate.stack.bench import figure, figures_on_throwaway_cluster
from busymate.stack.postgres import free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUESTS = 200
LOADS = int(os.environ.get("BUSYMATE_BENCH_LOADS", "6"))
ROUNDS = int(os.environ.get("BUSYMATE_BENCH_ROUNDS", "3"))
ROWS = 20_000
BATCH = 500
ANSWER = orjson.dumps({"items": [{"id": i, "name": f"item {i}", "ok": True} for i in range(12)]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser closed while a connection was open: not news


class Site:
    """The page and its resources; each finished load posts `/done?run=..&load=..&ms=..`."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.served: dict[str, set[str]] = {}
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stalls

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                run = query.get("run", [""])[0]
                if parts.path == "/":
                    body, kind = site.page(run, int(query.get("load", ["0"])[0])).encode(), "text/html"
                elif parts.path == "/r":
                    body, kind = ANSWER, "application/json"
                elif parts.path == "/done":
                    with site.lock:
                        site.times.setdefault(run, []).append(float(query["ms"][0]))
                    body, kind = b"{}", "application/json"
                else:
                    self.send_error(404)
                    return
                if parts.path in ("/", "/r"):
                    with site.lock:
                        site.served.setdefault(run, set()).add(f"{parts.path}?{parts.query}")
                self.send_response(200)
                self.send_header("content-type", kind)
                self.send_header("cache-control", "no-store")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, run: str, load: int) -> str:
        after = (
            f"location.href = '/?run={run}&load={load + 1}';"
            if load + 1 < LOADS
            else "document.title = 'done';"
        )
        return (
            "<!doctype html><title>bench</title><script>"
            f"Promise.all(Array.from({{length: {REQUESTS - 1}}}, (_, k) =>"
            f"  fetch(`/r?run={run}&load={load}&k=${{k}}`).then(r => r.json())))"
            ".then(async () => { const ms = performance.now();"
            f"  await fetch(`/done?run={run}&load={load}&ms=${{ms}}`); {after} }});"
            "</script>"
        )

    def url(self, run: str) -> str:
        return f"{self.base}/?run={run}&load=0"

    def wait(self, run: str, timeout: float = 120.0) -> list[float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.times.get(run, [])) >= LOADS:
                    return list(self.times[run])
            time.sleep(0.05)
        raise AssertionError(f"run {run}: {len(self.times.get(run, []))} of {LOADS} loads within {timeout} s")


@contextmanager
def _process(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _plain(site: Site, folder: Path) -> list[float]:
    run = uuid.uuid4().hex[:10]
    profile = tempfile.mkdtemp(dir=folder)
    args = [CHROMIUM, "--headless=new", "--no-sandbox", f"--user-data-dir={profile}", "--no-first-run"]
    with _process([*args, site.url(run)]):
        return site.wait(run)[1:]


def _network_only(site: Site) -> list[float]:
    """The floor of any CDP capture: a bare client attaches to the page, sends `Network.enable` and drops
    every event (no bodies asked for, no rows made)."""

    async def main() -> list[float]:
        run = uuid.uuid4().hex[:10]
        process, ws_url = await launch_chromium(CHROMIUM, headless=True)
        ids = itertools.count(1)
        try:
            async with connect(ws_url, max_size=None) as ws:

                async def call(method: str, params: dict[str, Any], session: str | None = None) -> Any:
                    call_id = next(ids)
                    message = {"id": call_id, "method": method, "params": params}
                    await ws.send(json.dumps({**message, "sessionId": session} if session else message))
                    while True:
                        answer = json.loads(await ws.recv())
                        if answer.get("id") == call_id:
                            return answer.get("result", {})

                target = await call("Target.createTarget", {"url": "about:blank"})
                attached = await call(
                    "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
                )
                session = attached["sessionId"]
                await call("Network.enable", {}, session)
                await call("Page.navigate", {"url": site.url(run)}, session)

                async def drop() -> None:
                    async for _ in ws:
                        pass

                dropping = asyncio.create_task(drop())
                times = await asyncio.to_thread(site.wait, run)
                dropping.cancel()
                return times[1:]
        finally:
            process.terminate()
            process.wait()

    return asyncio.run(main())


def _with_bmc(site: Site, env: dict[str, str], settings: Settings, device: str) -> list[float]:
    run = uuid.uuid4().hex[:10]
    with _process([str(BIN / "bmc"), "launch", "--headless", "--chromium", CHROMIUM, site.url(run)], env):
        times = site.wait(run)[1:]
    expected = site.served[run]
    deadline = time.monotonic() + 60
    stored: set[str] = set()
    while time.monotonic() < deadline:
        with psycopg.connect(settings.db_url(), autocommit=True) as conn:
            rows = conn.execute(
                "select path || '?' || query from public.entries where device_uuid = %s and query like %s "
                "and path <> '/done'",
                (device, f"run={run}&%"),
            ).fetchall()
        stored = {str(r[0]) for r in rows}
        if stored >= expected:
            break
        time.sleep(0.5)
    lost = sorted(expected - stored)
    print(
        f"bmc run {run}: {len(stored)} of {len(expected)} requests stored; not: {lost[:5]}", file=sys.stderr
    )
    return times


def _rows(batch: int) -> list[dict[str, object]]:
    now = time.time()
    return [
        {
            "id": str(uuid.uuid4()),
            "captured_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{i % 1000:03d}Z",
            "method": "GET",
            "scheme": "https",
            "host": f"api{i % 7}.example.com",
            "port": 443,
            "path": f"/v1/items/{i}",
            "query": f"page={i % 13}",
            "status": 200,
            "http_version": "HTTP/2.0",
            "duration_ms": 12.5,
            "ttfb_ms": 8,
            "request_size": 0,
            "response_size": 512,
            "request_headers": [["accept", "*/*"], ["user-agent", "bench"]],
            "response_headers": [["content-type", "application/json"]],
            "response_body_b64": "eyJvayI6IHRydWV9",
        }
        for i in range(batch)
    ]


def _ingest(api: Settings, key: str, token: str, path: str) -> float:
    bodies = [orjson.dumps({"batch": _rows(BATCH)}) for _ in range(ROWS // BATCH)]
    headers = {"apikey": key, "authorization": f"Bearer {token}", "content-type": "application/json"}
    with httpx.Client(base_url=api.api_url, headers=headers, timeout=60) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post(path, content=body)
            assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
            assert response.json().get("inserted") == BATCH, response.text[:300]
        return time.perf_counter() - started


def run(settings: Settings) -> list[str]:
    """Reset, start the API server, pair bmc, measure both figures, stop everything."""
    migrate.reset(settings)
    api = settings.with_overrides(api_port=free_port())
    folder = settings.state_dir / "bench-bmc"
    folder.mkdir(parents=True)
    server = ApiServer(api)
    server.start()
    site = Site()
    try:
        admin, _ = acting_token(api)
        key = tokens.anon_key(api.jwt_secret)
        headers = {"apikey": key, "authorization": f"Bearer {admin}"}
        with psycopg.connect(settings.db_url(), autocommit=True) as conn:
            row = conn.execute("select id from public.workspaces where slug = 'local'").fetchone()
        assert row is not None, "the seed's workspace 'local' is missing"
        created = httpx.post(
            f"{api.api_url}/rest/v1/rpc/create_device",
            json={"workspace_id": str(row[0]), "name": "bench bmc", "source": "bmc"},
            headers=headers,
            timeout=30,
        )
        assert created.status_code < 300, created.text
        device = str(created.json()["uuid"])
        code = httpx.post(
            f"{api.api_url}/rest/v1/rpc/issue_device_activation",
            json={"device_uuid": device, "valid_for": "15 minutes"},
            headers=headers,
            timeout=30,
        ).json()["code"]
        env = {
            **os.environ,
            **settings_env(api),
            "BUSYMATE_URL": api.api_url,
            "BUSYMATE_ANON_KEY": key,
            "BMC_HOME": str(folder / "home"),
        }
        subprocess.run([str(BIN / "bmc"), "pair", code], env=env, check=True, capture_output=True)
        token = json.loads((folder / "home" / "credential.json").read_text())["access_token"]

        plain: list[float] = []
        captured: list[float] = []
        network: list[float] = []
        for round_ in range(ROUNDS):  # alternate, so neither side always runs on a warmer machine
            if round_ % 2:
                captured += _with_bmc(site, env, settings, device)
                plain += _plain(site, folder)
            else:
                plain += _plain(site, folder)
                captured += _with_bmc(site, env, settings, device)
            network += _network_only(site)
            print(
                f"round {round_}: plain {plain[-LOADS + 1 :]} bmc {captured[-LOADS + 1 :]}", file=sys.stderr
            )

        functions, direct = [], []
        for _ in range(ROUNDS):
            functions.append(_ingest(api, key, token, "/functions/v1/ingest"))
            direct.append(_ingest(api, key, token, "/rest/v1/rpc/ingest_entries"))
        function_rate, direct_rate = ROWS / statistics.median(functions), ROWS / statistics.median(direct)
        return [
            figure(
                bench="bmc",
                figure=f"page load, {REQUESTS} requests, bmc attached (median of {len(captured)} loads)",
                value=round(statistics.median(captured), 1),
                unit="ms",
                baseline="the same page in the same Chromium without bmc",
                baseline_value=round(statistics.median(plain), 1),
            ),
            figure(
                bench="bmc",
                figure=f"page load, {REQUESTS} requests, only Network.enable by a bare CDP client dropping "
                f"every event (median of {len(network)} loads): the floor of any CDP capture",
                value=round(statistics.median(network), 1),
                unit="ms",
                baseline="the same page in the same Chromium without bmc",
                baseline_value=round(statistics.median(plain), 1),
            ),
            figure(
                bench="bmc",
                figure=f"/functions/v1/ingest, batches of {BATCH} (median of {ROUNDS})",
                value=round(function_rate),
                unit="rows/s",
                baseline="rpc/ingest_entries direct, same rows and token",
                baseline_value=round(direct_rate),
            ),
        ]
    finally:
        site.server.shutdown()
        server.stop()


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    for line in figures_on_throwaway_cluster(PROJECT_DIR, run):
        print(line, flush=True)


if __name__ == "__main__":
    main()
