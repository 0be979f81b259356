"""The dashboard's traffic page in headless Chromium under a live feed, beside the same page idle, in one run.

A member signs in through the page (a password user made through the auth admin API); the page shows the
traffic of a workspace whose paired device sends entries the real way: `ingest_entries` through /rest/v1 under
the device's token, in batches, so they reach the page over Realtime's firehose (`ws:<workspace_id>`).

Phases, on the same page, each measured in the page (frame times from a requestAnimationFrame loop, long
tasks from a PerformanceObserver) and each ended by reading the page's `row-count` and the JS heap (CDP
`Runtime.getHeapUsage`, as is and after a forced garbage collection):
  idle  signed in, live, nothing arriving, for BUSYMATE_BENCH_SECONDS (the baseline);
  feed  BUSYMATE_BENCH_RATE entries per second (batches of 100, one call every 100 ms at the default)
        for BUSYMATE_BENCH_SECONDS;
  fill  the rest up to BUSYMATE_BENCH_ROWS rows in all, at BUSYMATE_BENCH_FILL_RATE entries per second (the
        page only loads the latest 500 from REST, so every row it holds arrived live).
A phase ends when the page shows every row sent, or BUSYMATE_BENCH_SETTLE seconds after the last was sent.

Goals (issue 17): every row present, p95 frame time under 50 ms, heap under 300 MB. They are printed beside
the figures, never asserted. Prints one JSON line per figure (the feed beside the idle page) and then a
table of every phase, lines starting with `#`. Runs on a throw-away cluster with its own API server, serving
BUSYMATE_DASHBOARD_DIR (default dashboard/dist, built with `make dashboard` when missing). Chromium is
Debian's /usr/bin/chromium, driven by Playwright; nothing is downloaded.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import httpx
import psycopg
from playwright.sync_api import CDPSession, Page, sync_playwright

from busymate import tokens
from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.api_process import ApiServer
from busymate.stack.bench import figure, figures_on_throwaway_cluster
from busymate.stack.postgres import free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SECONDS = float(os.environ.get("BUSYMATE_BENCH_SECONDS", "30"))
RATE = int(os.environ.get("BUSYMATE_BENCH_RATE", "1000"))
ROWS = int(os.environ.get("BUSYMATE_BENCH_ROWS", "100000"))
FILL_RATE = int(os.environ.get("BUSYMATE_BENCH_FILL_RATE", "5000"))
SETTLE = float(os.environ.get("BUSYMATE_BENCH_SETTLE", "30"))
CALLS_PER_SECOND = 10  # the feed's batch is RATE / 10 rows (100 at the default)
VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 30_000
GOAL_P95_MS = 50.0
GOAL_HEAP_MB = 300.0
MB = 1024 * 1024

# Installed in the page: frame deltas from a requestAnimationFrame loop and long tasks, until stop().
MEASURE = """() => {
  const m = { frames: [], longtasks: [], running: true, last: null };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) m.longtasks.push(e.duration);
  });
  observer.observe({ type: "longtask" });
  const tick = (t) => {
    if (!m.running) return;
    if (m.last !== null) m.frames.push(t - m.last);
    m.last = t;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  m.stop = () => {
    m.running = false;
    for (const e of observer.takeRecords()) m.longtasks.push(e.duration);
    observer.disconnect();
    return { frames: m.frames, longtasks: m.longtasks };
  };
  window.__benchMeasure = m;
}"""
STOP = "() => window.__benchMeasure.stop()"


@dataclass
class Phase:
    """What one phase measured on the page."""

    name: str
    seconds: float  # the measured wall time
    sent: int  # rows sent during the phase
    sent_total: int  # rows sent since the page loaded
    present: int  # the page's row-count at the end
    frames: list[float]
    longtasks: list[float]
    heap_mb: float  # used JS heap as it was
    heap_gc_mb: float  # used JS heap after a forced collection
    nodes: int  # DOM nodes

    def frame_ms(self, q: float) -> float:
        """The q-th quantile (0..1) of the frame times; the maximum for 1."""
        if not self.frames:
            return float("nan")
        if q >= 1:
            return round(max(self.frames), 1)
        cuts = statistics.quantiles(self.frames, n=100, method="inclusive")
        return round(cuts[int(q * 100) - 1], 1)


# -- the world -----------------------------------------------------------------------------------------------


@dataclass
class World:
    workspace_id: str
    email: str
    password: str
    device_token: str


def _world(settings: Settings) -> World:
    """A workspace, a member who signs in with a password (made through the auth admin API with the service
    key, as an admin would) and a paired proxy device with its token."""
    service = tokens.service_role_key(settings.jwt_secret)
    email = f"bench-{uuid.uuid4().hex[:8]}@test.busymate.local"
    password = uuid.uuid4().hex
    made = httpx.post(
        f"{settings.api_url}/auth/v1/admin/users",
        json={
            "email": email,
            "password": password,
            "email_confirm": True,
            "user_metadata": {"name": "Bench"},
        },
        headers={"apikey": service, "authorization": f"Bearer {service}"},
        timeout=10,
    )
    made.raise_for_status()
    user_id = made.json()["id"]
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:
        ws = conn.execute(
            "insert into public.workspaces (slug, name) values ('dash-bench', 'Dashboard bench') returning id"
        ).fetchone()
        assert ws is not None
        conn.execute("update public.profiles set role = 'member' where id = %s", (user_id,))
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)", (ws[0], user_id)
        )
        dev = conn.execute(
            "with d as (insert into public.devices (workspace_id, owner_user_id, name, source) "
            "values (%s, %s, 'bench-phone', 'proxy') returning uuid) "
            "insert into private.device_credentials (device_uuid) select uuid from d "
            "returning device_uuid, credential_id",
            (ws[0], user_id),
        ).fetchone()
        assert dev is not None
    now = int(time.time())
    device_token = tokens.sign_hs256(
        {
            "sub": str(dev[0]),
            "role": "device",
            "workspace_id": str(ws[0]),
            "cred": str(dev[1]),
            "iat": now,
            "exp": now + 4 * 3600,
            "iss": "busymate",
        },
        settings.jwt_secret,
    )
    return World(str(ws[0]), email, password, device_token)


# -- the feed ------------------------------------------------------------------------------------------------

METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
STATUSES = (200, 200, 200, 201, 204, 304, 404, 500)
TYPES = ("application/json", "text/html; charset=utf-8", "image/png", "application/javascript")


def _batch(start: int, n: int) -> list[dict[str, object]]:
    """n captured flows, numbered from `start`, as a capture client sends them."""
    now = datetime.now(UTC).isoformat()
    rows: list[dict[str, object]] = []
    for i in range(start, start + n):
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "captured_at": now,
                "method": METHODS[i % len(METHODS)],
                "scheme": "https",
                "host": f"api{i % 50}.bench.example",
                "port": 443,
                "path": f"/v1/items/{i}",
                "query": "page=2&sort=desc" if i % 4 == 0 else None,
                "status": STATUSES[i % len(STATUSES)],
                "response_size": 200 + (i * 37) % 50_000,
                "duration_ms": 5 + (i * 13) % 900,
                "request_headers": [["Accept", "application/json"]],
                "response_headers": [["Content-Type", TYPES[i % len(TYPES)]]],
                "response_content_type": TYPES[i % len(TYPES)],
            }
        )
    return rows


def _send(client: httpx.Client, start: int, total: int, rate: int) -> tuple[int, float]:
    """Send `total` rows at `rate` per second, CALLS_PER_SECOND calls a second (later calls catch up when
    one is slow); returns (rows sent, seconds taken)."""
    per_call = max(1, min(1000, rate // CALLS_PER_SECOND))
    interval = per_call / rate
    sent = 0
    started = time.perf_counter()
    n = 0
    while sent < total:
        delay = started + n * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        size = min(per_call, total - sent)
        answer = client.post("/rest/v1/rpc/ingest_entries", json={"batch": _batch(start + sent, size)})
        answer.raise_for_status()
        inserted = answer.json()["inserted"]
        if inserted != size:
            raise RuntimeError(f"ingest_entries stored {inserted} of {size}: {answer.text[:300]}")
        sent += size
        n += 1
    return sent, time.perf_counter() - started


# -- the page ------------------------------------------------------------------------------------------------


def _row_count(page: Page) -> int:
    return int(page.get_by_test_id("row-count").inner_text())


def _settle(page: Page, expected: int) -> int:
    """Wait until the page shows `expected` rows, or SETTLE seconds; the row count then."""
    deadline = time.perf_counter() + SETTLE
    count = _row_count(page)
    while count < expected and time.perf_counter() < deadline:
        page.wait_for_timeout(250)
        count = _row_count(page)
    return count


def _heap(cdp: CDPSession) -> tuple[float, float]:
    """Used JS heap in MB as it is, then after a forced garbage collection."""
    before = cdp.send("Runtime.getHeapUsage")["usedSize"] / MB
    cdp.send("HeapProfiler.collectGarbage")
    after = cdp.send("Runtime.getHeapUsage")["usedSize"] / MB
    return round(before, 1), round(after, 1)


def _nodes(cdp: CDPSession) -> int:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return int(next((m["value"] for m in metrics if m["name"] == "Nodes"), 0))


def _phase(
    name: str, page: Page, cdp: CDPSession, sent_before: int, send: Callable[[], int], expected_extra: int
) -> Phase:
    """Measure the page while `send()` runs (it returns rows sent), until the rows are there."""
    page.evaluate(MEASURE)
    started = time.perf_counter()
    sent = send()
    present = _settle(page, sent_before + sent) if expected_extra else _row_count(page)
    measured = cast(dict[str, list[float]], page.evaluate(STOP))
    seconds = time.perf_counter() - started
    heap, heap_gc = _heap(cdp)
    return Phase(
        name,
        round(seconds, 1),
        sent,
        sent_before + sent,
        present,
        measured["frames"],
        measured["longtasks"],
        heap,
        heap_gc,
        _nodes(cdp),
    )


def _measure(settings: Settings, world: World) -> list[Phase]:
    """Sign in, then measure the idle, feed and fill phases on one page."""
    feed_rows = int(RATE * SECONDS)
    with (
        sync_playwright() as playwright,
        httpx.Client(
            base_url=settings.api_url,
            headers={
                "apikey": tokens.anon_key(settings.jwt_secret),
                "authorization": f"Bearer {world.device_token}",
            },
            timeout=30,
        ) as device,
    ):
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            context = browser.new_context(viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{settings.api_url}/")
            page.get_by_test_id("email").fill(world.email)
            page.get_by_test_id("password").fill(world.password)
            page.get_by_test_id("sign-in").click()
            page.get_by_test_id("connection-state").filter(has_text="live").wait_for(timeout=WAIT_MS)
            page.get_by_test_id("row-count").filter(has_text="0").wait_for(timeout=WAIT_MS)
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")

            def idle() -> int:
                time.sleep(SECONDS)
                return 0

            def feed() -> int:
                sent, took = _send(device, 0, feed_rows, RATE)
                print(f"# feed: {sent} rows in {took:.1f} s ({sent / took:.0f}/s)", file=sys.stderr)
                return sent

            def fill() -> int:
                rest = max(0, ROWS - feed_rows)
                sent, took = _send(device, feed_rows, rest, FILL_RATE)
                print(
                    f"# fill: {sent} rows in {took:.1f} s ({sent / max(took, 1e-9):.0f}/s)", file=sys.stderr
                )
                return sent

            phases = [_phase("idle", page, cdp, 0, idle, 0)]
            phases.append(_phase("feed", page, cdp, 0, feed, feed_rows))
            phases.append(_phase("fill", page, cdp, feed_rows, fill, ROWS - feed_rows))
            connection = page.get_by_test_id("connection-state").inner_text()
            if connection != "live" or errors:
                print(f"# the page ended {connection!r} with errors {errors[:5]}", file=sys.stderr)
            return phases
        finally:
            browser.close()


# -- output --------------------------------------------------------------------------------------------------


def _table(phases: list[Phase]) -> list[str]:
    head = (
        f"{'phase':<6} {'secs':>6} {'sent':>7} {'present':>8} {'frames':>7} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'max ms':>8} {'long tasks':>10} {'long ms':>8} {'heap MB':>8} {'heap gc':>8} {'nodes':>6}"
    )
    lines = [head]
    for p in phases:
        lines.append(
            f"{p.name:<6} {p.seconds:>6} {p.sent_total:>7} {p.present:>8} {len(p.frames):>7} "
            f"{p.frame_ms(0.5):>7} {p.frame_ms(0.95):>7} {p.frame_ms(1):>8} {len(p.longtasks):>10} "
            f"{round(sum(p.longtasks)):>8} {p.heap_mb:>8} {p.heap_gc_mb:>8} {p.nodes:>6}"
        )
    lines.append(
        f"goals: every row present, p95 frame time under {GOAL_P95_MS:.0f} ms, "
        f"heap under {GOAL_HEAP_MB:.0f} MB (sent and present: since the page loaded; "
        "heap gc: after a forced collection)"
    )
    return ["# " + line for line in lines]


def _figures(idle: Phase, feed: Phase, fill: Phase) -> list[str]:
    load = f"{RATE} entries/s for {SECONDS:g} s"
    base = f"the same page idle for {SECONDS:g} s (signed in, live, nothing arriving)"
    return [
        figure(
            bench="dashboard",
            figure=f"p95 frame time, {load} (goal under {GOAL_P95_MS:.0f} ms)",
            value=feed.frame_ms(0.95),
            unit="ms",
            baseline=base,
            baseline_value=idle.frame_ms(0.95),
        ),
        figure(
            bench="dashboard",
            figure=f"max frame time, {load}",
            value=feed.frame_ms(1),
            unit="ms",
            baseline=base,
            baseline_value=idle.frame_ms(1),
        ),
        figure(
            bench="dashboard",
            figure=f"long tasks in all, {load} ({len(feed.longtasks)} tasks; idle {len(idle.longtasks)})",
            value=round(sum(feed.longtasks)),
            unit="ms",
            baseline=base,
            baseline_value=round(sum(idle.longtasks)),
        ),
        figure(
            bench="dashboard",
            figure=f"rows present after {load} (goal: all {feed.sent_total})",
            value=feed.present,
            unit="rows",
            baseline="rows sent",
            baseline_value=feed.sent_total,
        ),
        figure(
            bench="dashboard",
            figure=f"rows present after {fill.sent_total} in all (goal: all)",
            value=fill.present,
            unit="rows",
            baseline="rows sent",
            baseline_value=fill.sent_total,
        ),
        figure(
            bench="dashboard",
            figure=f"JS heap after {fill.sent_total} rows, after a forced collection "
            f"(goal under {GOAL_HEAP_MB:.0f} MB; {fill.heap_mb} MB before it)",
            value=fill.heap_gc_mb,
            unit="MB",
            baseline="the same page idle",
            baseline_value=idle.heap_gc_mb,
        ),
        figure(
            bench="dashboard",
            figure=f"p95 frame time while filling to {fill.sent_total} rows at {FILL_RATE} entries/s",
            value=fill.frame_ms(0.95),
            unit="ms",
            baseline=base,
            baseline_value=idle.frame_ms(0.95),
        ),
    ]


def _dashboard_dir() -> Path:
    """The build to serve: BUSYMATE_DASHBOARD_DIR, else dashboard/dist (`make dashboard` builds it)."""
    if os.environ.get("BUSYMATE_DASHBOARD_DIR"):
        folder = Path(os.environ["BUSYMATE_DASHBOARD_DIR"]).resolve()
    else:
        folder = PROJECT_DIR / "dashboard" / "dist"
        if not (folder / "index.html").is_file():
            subprocess.run(["make", "--no-print-directory", "dashboard"], cwd=PROJECT_DIR, check=True)
    if not (folder / "index.html").is_file():
        raise SystemExit(f"{folder} holds no dashboard build (index.html)")
    return folder


def run(settings: Settings, dashboard_dir: Path) -> list[str]:
    """Every phase on a fresh database; returns the lines to print."""
    migrate.reset(settings)
    api = settings.with_overrides(api_port=free_port(), dashboard_dir=dashboard_dir, auth_rate_limit=1000)
    server = ApiServer(api)
    server.start()
    try:
        world = _world(api)
        idle, feed, fill = _measure(api, world)
    finally:
        server.stop()
    return [*_figures(idle, feed, fill), *_table([idle, feed, fill])]


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} is missing: make testdeps installs Debian's chromium")
    dashboard_dir = _dashboard_dir()
    for line in figures_on_throwaway_cluster(PROJECT_DIR, lambda settings: run(settings, dashboard_dir)):
        print(line, flush=True)


if __name__ == "__main__":
    main()
