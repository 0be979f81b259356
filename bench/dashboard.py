"""The dashboard's traffic page in headless Chromium under a live feed, beside the same page idle, in one run.

A member signs in through the page (a password user made through the auth admin API); the page shows the
traffic of a workspace whose paired device sends entries the real way: `ingest_entries` through /rest/v1 under
the device's token, in batches, so they reach the page over Realtime's firehose (`ws:<workspace_id>`).

Phases, one after the other on the same page, each measured in the page (frame times from a
requestAnimationFrame loop, long tasks from a PerformanceObserver, commits that changed the `row-count`) and
each ended by reading `row-count`, the JS heap (CDP `Runtime.getHeapUsage`, as is and after a forced garbage
collection), the DOM size and the CPU and main-thread time spent (`SystemInfo.getProcessInfo`,
`Performance.getMetrics`):
  idle    signed in, live, nothing arriving, for BUSYMATE_BENCH_SECONDS (default 30): the baseline;
  feed    BUSYMATE_BENCH_RATE entries per second (default 1000: a call of 100 every 100 ms) for
          BUSYMATE_BENCH_SECONDS;
  fill    the rest up to BUSYMATE_BENCH_ROWS rows (default 100,000) at BUSYMATE_BENCH_FILL_RATE entries per
          second (default 5000); the page loads only the latest 500 from REST: every row it holds came live;
  full    BUSYMATE_BENCH_RATE again for BUSYMATE_BENCH_SECONDS with those rows held (BUSYMATE_BENCH_FULL=0
          skips it);
  filter  only when BUSYMATE_BENCH_FILTER is set: that text in the filter box, then the same load again.
A phase ends when the page shows every row sent, or BUSYMATE_BENCH_SETTLE seconds (30) after the last one.
BUSYMATE_BENCH_PROFILE=<folder> also records a CPU profile and a trace of each loaded phase there and prints
where the time went (JS functions by self time, main-thread trace events by self time).

Goals (issue 17): every row present, p95 frame time under 50 ms, heap under 300 MB. They are printed beside
the figures, never asserted. Prints one JSON line per figure (each loaded phase beside the idle page), then a
table of every phase and the machine's load, lines starting with `#`. Runs on a throw-away cluster with its
own API server, serving BUSYMATE_DASHBOARD_DIR as it is, else dashboard/dist after `make dashboard`.
Chromium is Debian's /usr/bin/chromium, driven by Playwright; nothing is downloaded.
"""

from __future__ import annotations

import json
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
from typing import Any, cast

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
FULL = os.environ.get("BUSYMATE_BENCH_FULL", "1") != "0"
PROFILE = os.environ.get("BUSYMATE_BENCH_PROFILE", "")  # a folder: CPU profiles of the loaded phases
FILTER = os.environ.get("BUSYMATE_BENCH_FILTER", "")  # text for the filter box: one more phase, filtered
CALLS_PER_SECOND = 10  # the feed's batch is RATE / 10 rows (100 at the default)
VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 30_000
GOAL_P95_MS = 50.0
GOAL_HEAP_MB = 300.0
MB = 1024 * 1024

# Installed in the page until stop(): frame deltas from a requestAnimationFrame loop, long tasks, and the
# commits that changed the row count (a MutationObserver on it: one callback per commit that touched it).
MEASURE = """() => {
  const m = { frames: [], longtasks: [], renders: 0, running: true, last: null };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) m.longtasks.push(e.duration);
  });
  observer.observe({ type: "longtask" });
  const counter = document.querySelector('[data-testid="row-count"]');
  const mutations = new MutationObserver(() => { m.renders++; });
  if (counter) mutations.observe(counter, { childList: true, characterData: true, subtree: true });
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
    if (mutations.takeRecords().length) m.renders++;
    mutations.disconnect();
    return { frames: m.frames, longtasks: m.longtasks, renders: m.renders };
  };
  window.__benchMeasure = m;
}"""
STOP = "() => window.__benchMeasure.stop()"


@dataclass
class Phase:
    """What one phase measured on the page."""

    name: str
    rate: int  # entries per second asked for (0: idle)
    seconds: float  # the measured wall time
    sent: int  # rows sent during the phase
    sent_total: int  # rows sent since the page loaded
    present: int  # the page's row-count at the end
    frames: list[float]
    longtasks: list[float]
    renders: int  # commits that changed the row count
    heap_mb: float  # used JS heap as it was
    heap_gc_mb: float  # used JS heap after a forced collection
    nodes: int  # DOM nodes
    cpu: float  # CPU seconds of the renderer processes
    busy: float  # seconds the page's main thread ran tasks
    script: float  # of which running JavaScript
    layout: float  # of which style and layout

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


def _top_events(trace: bytes, count: int = 15) -> list[str]:
    """The trace events with the most self time on the page's main thread (CrRendererMain), as lines."""
    events = json.loads(trace)
    events = events["traceEvents"] if isinstance(events, dict) else events
    main = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    spans = sorted(
        (e["ts"], e.get("dur", 0), e["name"])
        for e in events
        if e.get("ph") == "X" and (e["pid"], e["tid"]) in main and e.get("dur")
    )
    self_us: dict[str, float] = {}
    stack: list[list[Any]] = []  # [end, name, self time]
    for ts, dur, name in spans:
        while stack and stack[-1][0] <= ts:
            _, done, own = stack.pop()
            self_us[done] = self_us.get(done, 0.0) + own
        if stack:
            stack[-1][2] -= dur
        stack.append([ts + dur, name, dur])
    for _, done, own in stack:
        self_us[done] = self_us.get(done, 0.0) + own
    top = sorted(self_us.items(), key=lambda kv: -kv[1])[:count]
    return [f"{us / 1000:9.0f} ms  {name}" for name, us in top]


def _top_functions(profile: dict[str, Any], count: int = 15) -> list[str]:
    """The functions with the most self time in a CDP CPU profile, as lines."""
    by_id = {node["id"]: node for node in profile["nodes"]}
    self_us: dict[str, float] = {}
    for node_id, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        frame = by_id[node_id]["callFrame"]
        name = frame["functionName"] or "(anonymous)"
        where = f"{name} {frame['url'].rsplit('/', 1)[-1]}:{frame['lineNumber'] + 1}"
        self_us[where] = self_us.get(where, 0.0) + delta
    total = sum(self_us.values()) or 1.0
    top = sorted(self_us.items(), key=lambda kv: -kv[1])[:count]
    return [f"{us / 1000:9.0f} ms {100 * us / total:5.1f}%  {where}" for where, us in top]


@dataclass
class Probe:
    """The measured page and its DevTools sessions (the page's, and the browser's for process CPU time)."""

    page: Page
    cdp: CDPSession
    browser_cdp: CDPSession
    send: Callable[[int, int], int]  # send(rows, rate) -> rows sent

    def heap(self) -> tuple[float, float]:
        """Used JS heap in MB as it is, then after a forced garbage collection."""
        before = self.cdp.send("Runtime.getHeapUsage")["usedSize"] / MB
        self.cdp.send("HeapProfiler.collectGarbage")
        after = self.cdp.send("Runtime.getHeapUsage")["usedSize"] / MB
        return round(before, 1), round(after, 1)

    def metrics(self) -> dict[str, float]:
        """Chromium's page metrics (Nodes; the main thread's cumulative TaskDuration, ScriptDuration,
        LayoutDuration, RecalcStyleDuration in seconds) and `cpu`, the CPU seconds of the renderers."""
        out = {m["name"]: float(m["value"]) for m in self.cdp.send("Performance.getMetrics")["metrics"]}
        processes = self.browser_cdp.send("SystemInfo.getProcessInfo")["processInfo"]
        out["cpu"] = sum(float(p["cpuTime"]) for p in processes if p["type"] == "renderer")
        return out


def _profiled(name: str, probe: Probe) -> Callable[[], None]:
    """Start a CPU profile and a trace of the page; the returned function stops them and prints where the
    time went (BUSYMATE_BENCH_PROFILE)."""
    browser = probe.page.context.browser
    assert browser is not None
    browser.start_tracing(page=probe.page, categories=["devtools.timeline", "v8", "blink", "toplevel"])
    probe.cdp.send("Profiler.enable")
    probe.cdp.send("Profiler.setSamplingInterval", {"interval": 500})
    probe.cdp.send("Profiler.start")

    def stop() -> None:
        profile = probe.cdp.send("Profiler.stop")["profile"]
        trace = browser.stop_tracing()
        folder = Path(PROFILE)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.cpuprofile").write_text(json.dumps(profile))
        (folder / f"{name}.trace.json").write_bytes(trace)
        print(f"# {name}: JS self time by function ({folder / name}.cpuprofile)", file=sys.stderr)
        for line in _top_functions(profile):
            print(f"#   {line}", file=sys.stderr)
        print(f"# {name}: main-thread self time by trace event ({folder / name}.trace.json)", file=sys.stderr)
        for line in _top_events(trace):
            print(f"#   {line}", file=sys.stderr)

    return stop


def _phase(name: str, rate: int, rows: int, probe: Probe) -> Phase:
    """Measure the page while `rows` are sent at `rate` (idle for SECONDS when rate is 0) and until they
    are on the page; then read the row count, the heap and the DOM size."""
    page = probe.page
    sent_before = int(page.evaluate("() => window.__benchSent || 0"))
    stop_profile = _profiled(name, probe) if PROFILE and rate else None
    before = probe.metrics()
    page.evaluate(MEASURE)
    started = time.perf_counter()
    if rate:
        sent = probe.send(rows, rate)
        present = _settle(page, sent_before + sent)
    else:
        time.sleep(SECONDS)
        sent, present = 0, _row_count(page)
    measured = cast(dict[str, Any], page.evaluate(STOP))
    seconds = time.perf_counter() - started
    after = probe.metrics()
    page.evaluate(f"() => {{ window.__benchSent = {sent_before + sent}; }}")
    if stop_profile:
        stop_profile()
    heap, heap_gc = probe.heap()

    def spent(*keys: str) -> float:
        return round(sum(after.get(k, 0) - before.get(k, 0) for k in keys), 2)

    return Phase(
        name,
        rate,
        round(seconds, 1),
        sent,
        sent_before + sent,
        present,
        measured["frames"],
        measured["longtasks"],
        int(measured["renders"]),
        heap,
        heap_gc,
        int(probe.metrics().get("Nodes", 0)),  # after the collection: detached nodes are gone
        spent("cpu"),
        spent("TaskDuration"),
        spent("ScriptDuration"),
        spent("LayoutDuration", "RecalcStyleDuration"),
    )


def _measure(settings: Settings, world: World) -> list[Phase]:
    """Sign in, then measure the phases one after the other on one page."""
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
            numbered = 0

            def send(rows: int, rate: int) -> int:
                nonlocal numbered
                sent, took = _send(device, numbered, rows, rate)
                numbered += sent
                print(f"# sent {sent} rows in {took:.1f} s ({sent / max(took, 1e-9):.0f}/s)", file=sys.stderr)
                return sent

            probe = Probe(page, context.new_cdp_session(page), browser.new_browser_cdp_session(), send)
            probe.cdp.send("Performance.enable")
            phases = [
                _phase("idle", 0, 0, probe),
                _phase("feed", RATE, feed_rows, probe),
                _phase("fill", FILL_RATE, max(0, ROWS - feed_rows), probe),
            ]
            if FULL:
                phases.append(_phase("full", RATE, feed_rows, probe))
            if FILTER:  # the filter box narrows the held rows: the list is filtered again on every flush
                page.get_by_test_id("filter").fill(FILTER)
                phases.append(_phase("filter", RATE, feed_rows, probe))
            connection = page.get_by_test_id("connection-state").inner_text()
            if connection != "live" or errors:
                print(f"# the page ended {connection!r} with errors {errors[:5]}", file=sys.stderr)
            return phases
        finally:
            browser.close()


# -- output --------------------------------------------------------------------------------------------------


def _table(phases: list[Phase]) -> list[str]:
    """Every phase side by side with the goals, as `#` lines."""
    head = (
        f"{'phase':<6} {'rate/s':>6} {'secs':>5} {'sent':>7} {'present':>7} {'renders':>7} {'frames':>6} "
        f"{'p50 ms':>6} {'p95 ms':>6} {'max ms':>6} {'long tasks':>10} {'long ms':>7} {'heap MB':>7} "
        f"{'heap gc':>7} {'nodes':>5} {'cpu s':>5} {'busy s':>6} {'js s':>5} {'style+layout s':>14}"
    )
    lines = [head]
    for p in phases:
        lines.append(
            f"{p.name:<6} {p.rate:>6} {p.seconds:>5} {p.sent_total:>7} {p.present:>7} {p.renders:>7} "
            f"{len(p.frames):>6} {p.frame_ms(0.5):>6} {p.frame_ms(0.95):>6} {p.frame_ms(1):>6} "
            f"{len(p.longtasks):>10} {round(sum(p.longtasks)):>7} {p.heap_mb:>7} {p.heap_gc_mb:>7} "
            f"{p.nodes:>5} {p.cpu:>5} {p.busy:>6} {p.script:>5} {p.layout:>14}"
        )
    lines += [
        f"goal  every row present (present = sent), p95 frame time under {GOAL_P95_MS:.0f} ms, "
        f"heap under {GOAL_HEAP_MB:.0f} MB after {ROWS} rows",
        "sent and present count from the page's load; renders: commits that changed the row count; "
        "heap gc: after a forced collection;",
        "cpu: CPU seconds of the renderer; busy/js/style+layout: seconds of the page's main thread "
        "(Performance.getMetrics)",
        f"machine: {os.cpu_count()} cores, load average {LOAD_BEFORE:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (the stack, the sender and Chromium share them)",
    ]
    return ["# " + line for line in lines]


def _figures(phases: list[Phase]) -> list[str]:
    """One JSON line per figure of each loaded phase, beside the idle page (the first phase)."""
    idle = phases[0]
    base = f"the same page idle for {SECONDS:g} s (signed in, live, nothing arriving)"
    what = {
        "feed": f"{RATE} entries/s for {SECONDS:g} s",
        "fill": f"filling to {ROWS} rows at {FILL_RATE} entries/s",
        "full": f"{RATE} entries/s for {SECONDS:g} s more, {ROWS} rows held",
        "filter": f"{RATE} entries/s for {SECONDS:g} s more, the filter box set to {FILTER!r}",
    }
    lines = []
    for p in phases[1:]:
        load = what[p.name]
        lines += [
            figure(
                bench="dashboard",
                figure=f"p95 frame time, {load} (goal under {GOAL_P95_MS:.0f} ms; max {p.frame_ms(1)} ms)",
                value=p.frame_ms(0.95),
                unit="ms",
                baseline=base,
                baseline_value=idle.frame_ms(0.95),
            ),
            figure(
                bench="dashboard",
                figure=f"long tasks in all, {load} ({len(p.longtasks)} tasks; idle {len(idle.longtasks)})",
                value=round(sum(p.longtasks)),
                unit="ms",
                baseline=base,
                baseline_value=round(sum(idle.longtasks)),
            ),
            figure(
                bench="dashboard",
                figure=f"renderer CPU, {load} ({p.cpu} s in {p.seconds} s, {p.renders} commits)",
                value=round(100 * p.cpu / p.seconds, 1),
                unit="% of one core",
                baseline=base,
                baseline_value=round(100 * idle.cpu / idle.seconds, 1),
            ),
            figure(
                bench="dashboard",
                figure=f"rows present, {load} (goal: every row sent)",
                value=p.present,
                unit="rows",
                baseline="rows sent since the page loaded",
                baseline_value=p.sent_total,
            ),
            figure(
                bench="dashboard",
                figure=f"JS heap after a forced collection, {p.sent_total} rows held "
                f"(goal under {GOAL_HEAP_MB:.0f} MB; {p.heap_mb} MB before it)",
                value=p.heap_gc_mb,
                unit="MB",
                baseline="the same page idle",
                baseline_value=idle.heap_gc_mb,
            ),
        ]
    return lines


def _dashboard_dir() -> Path:
    """The build to serve: BUSYMATE_DASHBOARD_DIR as it is, else dashboard/dist, which `make dashboard`
    brings up to date first (a failed build leaves the previous one, said on stderr)."""
    if os.environ.get("BUSYMATE_DASHBOARD_DIR"):
        folder = Path(os.environ["BUSYMATE_DASHBOARD_DIR"]).resolve()
    else:
        folder = PROJECT_DIR / "dashboard" / "dist"
        built = subprocess.run(
            ["make", "--no-print-directory", "dashboard"], cwd=PROJECT_DIR, stdout=sys.stderr
        )
        if built.returncode:
            print(f"# make dashboard failed: measuring the previous build in {folder}", file=sys.stderr)
    if not (folder / "index.html").is_file():
        raise SystemExit(f"{folder} holds no dashboard build (index.html)")
    return folder


LOAD_BEFORE = os.getloadavg()[0]


def run(settings: Settings, dashboard_dir: Path) -> list[str]:
    """Every phase on a fresh database; returns the lines to print."""
    migrate.reset(settings)
    api = settings.with_overrides(api_port=free_port(), dashboard_dir=dashboard_dir, auth_rate_limit=1000)
    server = ApiServer(api)
    server.start()
    try:
        world = _world(api)
        phases = _measure(api, world)
    finally:
        server.stop()
    return [*_figures(phases), *_table(phases)]


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} is missing: make testdeps installs Debian's chromium")
    dashboard_dir = _dashboard_dir()
    for line in figures_on_throwaway_cluster(PROJECT_DIR, lambda settings: run(settings, dashboard_dir)):
        print(line, flush=True)


if __name__ == "__main__":
    main()
