"""`busymate proxy run` beside plain `mitmdump` with no addon, on the same traffic in the same run.

A device port with capture on (every flow spooled and written through `ingest_entries` under the device's
credential) and a plain `mitmdump -q` (its own confdir and CA, no addon) proxy the same HTTPS requests,
`GET /hello?...` to the end-to-end tests' origin (tests/e2e/origin.py: hypercorn over TLS, its own process):
  (i)  reused connections: CONCURRENCY keep-alive HTTP/1.1 connections in CONNECT tunnels, REUSED requests;
  (ii) new TLS connections: every request opens its own connection, CONNECT, TLS handshake with the proxy,
       `Connection: close`, FRESH requests, CONCURRENCY at a time.
Requests per second and p50/p99 latency of each, per proxy. After a warm-up the runs alternate (busymate then
plain, plain then busymate) for ROUNDS rounds. Each figure is the round whose busymate/plain ratio is the
median of the rounds: the two runs of a round are seconds apart, so a change in what else loads the machine
touches both, where medians taken of each side apart could pair a quiet run with a busy one. After every
busymate run, every one of its requests must be stored once (counted in the database) before the next starts.

Capture-to-database lag: LAG_RATE requests a second for LAG_SECONDS through the device port on LAG_CONNS
keep-alive connections, while the database is polled every POLL seconds (as postgres) for the run's rows; the
lag of a request is the start of the first poll that saw its row minus the moment its response reached the
client (so it overstates the true lag by up to one poll interval and the poll's own time). Target: p99 < 1 s.

The load generator is a minimal asyncio client (uvloop, CONNECT, start_tls, Content-Length bodies) in this
process: httpx costs more CPU per request than a proxy it would measure on a small machine. The proxies, the
origin, the API server, Postgres and the client share this machine's cores; CPU time per request of each goes
to stderr, with each run and the check that every captured request was stored. Prints one JSON line per
figure; runs on a throw-away cluster and API server. BUSYMATE_BENCH_REUSED, BUSYMATE_BENCH_FRESH and
BUSYMATE_BENCH_ROUNDS change REUSED, FRESH and ROUNDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import ssl
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvloop

from busymate import tokens
from busymate.cli.session import acting_token
from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.api_process import ApiServer, settings_env
from busymate.stack.bench import figure, figures_on_throwaway_cluster
from busymate.stack.postgres import free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONCURRENCY = 8
REUSED = int(os.environ.get("BUSYMATE_BENCH_REUSED", "2000"))
FRESH = int(os.environ.get("BUSYMATE_BENCH_FRESH", "400"))
ROUNDS = int(os.environ.get("BUSYMATE_BENCH_ROUNDS", "5"))
WARMUP = 0.1  # of each count, on each proxy, before the rounds
LAG_RATE = 200  # requests per second
LAG_SECONDS = 10.0
LAG_CONNS = 4
POLL = 0.02
LANDED_WITHIN = 60.0  # seconds every entry of a run has to reach the database
WAIT = 60.0

BUSYMATE, PLAIN = "busymate", "plain"
REUSE, NEW = "reused", "new TLS"

type Conn = psycopg.Connection[tuple[Any, ...]]
type Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]

# The origin of the end-to-end tests, in a process of its own (not sharing this one's GIL with the client).
# It prints its port, then serves until its stdin closes.
_ORIGIN = """
import sys
from pathlib import Path
from tests.e2e.origin import Origin
with Origin(Path(sys.argv[1])) as origin:
    print(origin.port, flush=True)
    sys.stdin.read()
"""


# -- processes -----------------------------------------------------------------------------------------------


def _until[T](check: Callable[[], T | None], what: str, timeout: float = WAIT, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Origin:
    """The HTTPS origin: its process, port and CA."""

    proc: subprocess.Popen[bytes]
    port: int
    ca_file: Path


@contextlib.contextmanager
def _origin(folder: Path) -> Iterator[Origin]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _ORIGIN, str(folder)],
        cwd=PROJECT_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the origin did not start ({proc.poll()})")
        yield Origin(proc, int(line), folder / "ca.pem")
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            _stop(proc)


@dataclass
class Proxy:
    """A proxy under test: where it listens, the CA its clients trust, its process and log."""

    name: str
    port: int
    ca_file: Path
    proc: subprocess.Popen[bytes]
    log_file: Path

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{_tail(self.log_file)}")

    def context(self) -> ssl.SSLContext:
        """A client context trusting this proxy's CA, offering HTTP/1.1 as httpx would."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx


@contextlib.contextmanager
def _busymate_proxy(api: Settings, port: int, upstream_ca: Path) -> Iterator[Proxy]:
    """`busymate proxy run` with a one-port pool, as tests/e2e/proxy_helpers.running_proxy starts it."""
    log_file = api.state_dir / "bench-busymate-proxy.log"
    env = {
        **os.environ,
        **settings_env(api),
        "BUSYMATE_PROXY_PORTS": f"{port}-{port}",
        "BUSYMATE_PROXY_HOST": "127.0.0.1",
        "BUSYMATE_PROXY_UPSTREAM_CA": str(upstream_ca),
    }
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "busymate"), "proxy", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    proxy = Proxy(BUSYMATE, port, api.state_dir / "proxy" / "mitmproxy-ca-cert.pem", proc, log_file)
    try:
        _until(
            lambda: proc.poll() is not None or "busymate proxy ready" in log_file.read_text(errors="replace"),
            "the busymate proxy to start",
        )
        proxy.alive()
        _until(lambda: _listening(port), f"the busymate proxy on port {port}")
        yield proxy
    finally:
        _stop(proc)


@contextlib.contextmanager
def _plain_mitmdump(folder: Path, port: int, upstream_ca: Path) -> Iterator[Proxy]:
    """`mitmdump -q`, no addon, its own confdir (and so its own CA)."""
    confdir = folder / "mitmdump"
    confdir.mkdir(parents=True)
    log_file = folder / "mitmdump.log"
    command = [
        str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", f"confdir={confdir}", "--set", f"ssl_verify_upstream_trusted_ca={upstream_ca}",
    ]  # fmt: skip
    with log_file.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proxy = Proxy(PLAIN, port, confdir / "mitmproxy-ca-cert.pem", proc, log_file)
    try:
        _until(lambda: proc.poll() is not None or _listening(port), f"mitmdump on port {port}")
        proxy.alive()
        _until(proxy.ca_file.exists, "mitmdump's CA")
        yield proxy
    finally:
        _stop(proc)


def _cpu_probe(groups: dict[str, list[int]]) -> Callable[[], dict[str, float]]:
    """CPU seconds used so far by each group: this process, or the given processes and their children."""
    tick = os.sysconf("SC_CLK_TCK")

    def probe() -> dict[str, float]:
        used = dict.fromkeys(groups, 0.0)
        roots = {pid: name for name, pids in groups.items() for pid in pids}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(entry.name), int(fields[1])
            name = roots.get(pid) or roots.get(ppid)
            if name is not None:
                used[name] += (int(fields[11]) + int(fields[12])) / tick
        times = os.times()
        used["load"] = times.user + times.system
        return used

    return probe


# -- the load ------------------------------------------------------------------------------------------------


async def _tunnel(proxy: Proxy, ctx: ssl.SSLContext, origin_port: int) -> Stream:
    """A TLS connection to the origin through the proxy: CONNECT, then the handshake with the proxy."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        f"CONNECT localhost:{origin_port} HTTP/1.1\r\nHost: localhost:{origin_port}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{proxy.name} refused the tunnel: {head!r}")
    await writer.start_tls(ctx, server_hostname="localhost")
    return reader, writer


async def _get(stream: Stream, request: bytes) -> None:
    """Send one request, read its response (Content-Length body), check it is `200 hello HTTP/1.1`."""
    reader, writer = stream
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    at = head.lower().index(b"\r\ncontent-length:") + 17
    body = await reader.readexactly(int(head[at : head.index(b"\r\n", at)]))
    if head[9:12] != b"200" or body != b"hello HTTP/1.1":
        raise RuntimeError(f"unexpected answer: {head!r} {body!r}")


def _request(origin_port: int, query: str, *, close: bool) -> bytes:
    last = "Connection: close\r\n" if close else ""
    return f"GET /hello?{query} HTTP/1.1\r\nHost: localhost:{origin_port}\r\n{last}\r\n".encode()


@dataclass
class Run:
    """What one timed run measured."""

    rate: float  # requests per second
    p50: float  # ms
    p99: float  # ms
    cpu: dict[str, float]  # CPU seconds per request, by process group


async def _drive(
    proxy: Proxy, origin_port: int, scenario: str, count: int, tag: str, cpu: Callable[[], dict[str, float]]
) -> Run:
    """`count` requests through `proxy`, CONCURRENCY at a time; queries `b=<tag>&i=<n>`."""
    ctx = proxy.context()
    numbers = itertools.count()
    latencies: list[float] = []
    fresh = scenario == NEW

    async def worker() -> None:
        stream = None if fresh else await _tunnel(proxy, ctx, origin_port)
        try:
            while (i := next(numbers)) < count:
                request = _request(origin_port, f"b={tag}&i={i}", close=fresh)
                started = time.perf_counter()
                if stream is None:
                    one = await _tunnel(proxy, ctx, origin_port)
                    try:
                        await _get(one, request)
                    finally:
                        one[1].close()
                else:
                    await _get(stream, request)
                latencies.append(time.perf_counter() - started)
        finally:
            if stream is not None:
                stream[1].close()

    before = cpu()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    after = cpu()
    assert len(latencies) == count, (len(latencies), count)
    cuts = statistics.quantiles(latencies, n=100)
    return Run(
        count / elapsed, cuts[49] * 1000, cuts[98] * 1000, {k: (after[k] - before[k]) / count for k in after}
    )


def _landed(conn: Conn, device: str, tag: str, count: int) -> None:
    """Wait until every request of run `tag` is stored exactly once, with status 200, or fail loudly."""
    got: tuple[int, ...] = ()

    def check() -> bool:
        nonlocal got
        row = conn.execute(
            "select count(*), count(distinct query), count(*) filter (where status = 200) "
            "from public.entries where device_uuid = %s and query like %s",
            (device, f"b={tag}&%"),
        ).fetchone()
        got = tuple(int(n) for n in row or ())
        return got[0] >= count

    try:
        _until(check, f"{count} entries of run {tag}", LANDED_WITHIN, every=0.05)
    except AssertionError:
        raise AssertionError(
            f"run {tag}: {got[0]} of {count} entries stored within {LANDED_WITHIN:.0f} s"
        ) from None
    if got != (count, count, count):
        raise AssertionError(f"run {tag}: (rows, distinct, status 200) = {got}, expected {count} each")


# -- capture-to-database lag ---------------------------------------------------------------------------------


async def _lag(proxy: Proxy, origin_port: int, device: str, db_url: str) -> list[float]:
    """LAG_RATE requests a second for LAG_SECONDS; each one's lag in ms (see the module docstring)."""
    ctx = proxy.context()
    tag = uuid.uuid4().hex[:12]
    total = int(LAG_RATE * LAG_SECONDS)
    sent: dict[str, float] = {}  # query -> wall-clock time the request was sent
    received: dict[str, float] = {}  # query -> wall-clock time its response was read
    seen: dict[str, float] = {}  # query -> wall-clock start of the first poll that saw the row
    streams = [await _tunnel(proxy, ctx, origin_port) for _ in range(LAG_CONNS)]
    t0 = time.perf_counter() + 0.2
    done = asyncio.Event()

    async def sender(k: int) -> None:
        for j in range(k, total, LAG_CONNS):
            delay = t0 + j / LAG_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            query = f"l={tag}&i={j}"
            sent[query] = time.time()
            await _get(streams[k], _request(origin_port, query, close=False))
            received[query] = time.time()

    async def poller() -> None:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            deadline = None
            while len(seen) < total:
                if done.is_set():
                    deadline = deadline or time.monotonic() + LANDED_WITHIN
                    if time.monotonic() > deadline:
                        return
                # Only rows captured since the oldest request not seen yet (captured_at is when the proxy
                # read the request, after the client sent it): each poll reads a few hundred rows at most.
                low = min((t for q, t in sent.items() if q not in seen), default=time.time()) - 0.5
                at = time.time()
                cur = await conn.execute(
                    "select query from public.entries where device_uuid = %s "
                    "and captured_at >= to_timestamp(%s) and query like %s",
                    (device, low, f"l={tag}&%"),
                )
                for (query,) in await cur.fetchall():
                    seen.setdefault(query, at)
                await asyncio.sleep(max(0.0, at + POLL - time.time()))

    polling = asyncio.create_task(poller())
    try:
        await asyncio.gather(*(sender(k) for k in range(LAG_CONNS)))
    finally:
        done.set()
        for _, writer in streams:
            writer.close()
    await polling
    if len(seen) != total:
        raise AssertionError(f"lag run: {len(seen)} of {total} entries reached the database")
    return [(seen[q] - received[q]) * 1000 for q in received]


# -- the run -------------------------------------------------------------------------------------------------


async def _measure(
    settings: Settings,
    proxies: dict[str, Proxy],
    origin_port: int,
    device: str,
    cpu: dict[str, Callable[[], dict[str, float]]],
) -> tuple[dict[tuple[str, str], list[Run]], list[float]]:
    counts = {REUSE: REUSED, NEW: FRESH}
    runs: dict[tuple[str, str], list[Run]] = {(p, s): [] for p in proxies for s in counts}
    stored = [0, 0]  # busymate runs checked, requests stored
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:

        async def one(name: str, scenario: str, count: int) -> Run:
            tag = uuid.uuid4().hex[:12]
            proxies[name].alive()
            run = await _drive(proxies[name], origin_port, scenario, count, tag, cpu[name])
            if name == BUSYMATE:
                # Every flow stored once before the next run starts (its ingest must not slow the next run).
                _landed(conn, device, tag, count)
                stored[0] += 1
                stored[1] += count
            return run

        for name in proxies:  # warm up: certificates, connections, caches, the ingest path
            for scenario, count in counts.items():
                await one(name, scenario, max(CONCURRENCY, int(count * WARMUP)))
        for r in range(ROUNDS):
            order = [BUSYMATE, PLAIN] if r % 2 == 0 else [PLAIN, BUSYMATE]
            for scenario, count in counts.items():
                for name in order:
                    run = await one(name, scenario, count)
                    runs[(name, scenario)].append(run)
                    print(
                        f"# round {r + 1} {name:8} {scenario:8}: {run.rate:7.0f} req/s, "
                        f"p50 {run.p50:6.2f} ms, p99 {run.p99:6.2f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
        proxies[BUSYMATE].alive()
        lags = await _lag(proxies[BUSYMATE], origin_port, device, settings.db_url())
    print(
        f"# check: every request of {stored[0]} busymate runs stored once, status 200 ({stored[1]} rows), "
        f"and every one of the lag run's {len(lags)}",
        file=sys.stderr,
    )
    return runs, lags


def _report(runs: dict[tuple[str, str], list[Run]], lags: list[float]) -> list[str]:
    def median_round(scenario: str, what: str) -> tuple[float, float]:
        """(busymate, plain) of the round whose ratio is the median one."""
        pairs = sorted(
            (
                (getattr(b, what), getattr(p, what))
                for b, p in zip(runs[(BUSYMATE, scenario)], runs[(PLAIN, scenario)], strict=True)
            ),
            key=lambda pair: pair[0] / pair[1],
        )
        return pairs[len(pairs) // 2]

    for (name, scenario), rs in runs.items():
        groups = rs[0].cpu.keys()
        per = ", ".join(f"{g} {statistics.median(r.cpu[g] for r in rs) * 1e6:.0f} us" for g in groups)
        print(f"# CPU per request, {name}, {scenario}: {per}", file=sys.stderr)
    for scenario in (REUSE, NEW):
        mine, theirs = (
            statistics.median(r.cpu["proxy"] for r in runs[(p, scenario)]) for p in (BUSYMATE, PLAIN)
        )
        print(
            f"# proxy process CPU per request, {scenario}, busymate / plain: {mine / theirs:.3f}",
            file=sys.stderr,
        )
    base = "plain mitmdump -q, no addon, same requests"
    lines = []
    for scenario, label in (
        (REUSE, f"reused HTTP/1.1 connections ({CONCURRENCY} in flight, {REUSED} requests)"),
        (NEW, f"a new TLS connection per request ({CONCURRENCY} in flight, {FRESH} requests)"),
    ):
        what = f"GET /hello through a device port, capture on, {label}, the median round of {ROUNDS}"
        for attr, unit, title in (("rate", "req/s", "requests/s"), ("p50", "ms", "p50 latency"),
                                  ("p99", "ms", "p99 latency")):  # fmt: skip
            value, baseline = median_round(scenario, attr)
            named = base if attr == "rate" else f"{title} of {base}"
            lines.append(
                figure(bench="proxy", figure=f"{what}: {title}", value=round(value, 2), unit=unit,
                       baseline=named, baseline_value=round(baseline, 2))
            )  # fmt: skip
    cuts = statistics.quantiles(lags, n=100)
    what = (
        f"capture-to-database lag, {LAG_RATE} req/s for {LAG_SECONDS:.0f} s, polled every {POLL * 1e3:.0f} ms"
    )
    for title, value in (("p50", cuts[49]), ("p99", cuts[98])):
        lines.append(
            figure(bench="proxy", figure=f"{what}: {title}", value=round(value, 1), unit="ms",
                   baseline="target: p99 under 1 s", baseline_value=1000)
        )  # fmt: skip
    return lines


def run(settings: Settings) -> list[str]:
    """Reset, start the API server, the origin and both proxies, measure, stop everything."""
    migrate.reset(settings)
    api = settings.with_overrides(api_port=free_port())
    folder = settings.state_dir / "bench-proxy"
    folder.mkdir(parents=True)
    server = ApiServer(api)
    api_pid = server.start()
    try:
        token, _ = acting_token(api)  # the local admin, as `busymate proxy run` itself acts
        with psycopg.connect(settings.db_url(), autocommit=True) as conn:
            row = conn.execute("select id from public.workspaces where slug = 'local'").fetchone()
        assert row is not None, "the seed's workspace 'local' is missing"
        port, plain_port = free_port(), free_port()
        response = httpx.post(
            f"{api.api_url}/rest/v1/rpc/create_device",
            json={"workspace_id": str(row[0]), "name": "bench proxy", "source": "proxy",
                  "allowed_sources": ["127.0.0.1/32"], "proxy_port": port},
            headers={"apikey": tokens.anon_key(api.jwt_secret), "authorization": f"Bearer {token}"},
            timeout=30,
        )  # fmt: skip
        assert response.status_code < 300, response.text
        device = str(response.json()["uuid"])
        postmaster = int((settings.data_dir / "postmaster.pid").read_text().split()[0])
        with (
            _origin(folder / "origin") as origin,
            _busymate_proxy(api, port, origin.ca_file) as busymate,
            _plain_mitmdump(folder, plain_port, origin.ca_file) as plain,
        ):
            common = {"origin": [origin.proc.pid]}
            cpu = {
                BUSYMATE: _cpu_probe(
                    {"proxy": [busymate.proc.pid], **common, "api": [api_pid], "postgres": [postmaster]}
                ),
                PLAIN: _cpu_probe({"proxy": [plain.proc.pid], **common}),
            }
            runs, lags = asyncio.run(
                _measure(settings, {BUSYMATE: busymate, PLAIN: plain}, origin.port, device, cpu),
                loop_factory=uvloop.new_event_loop,
            )
        return _report(runs, lags)
    finally:
        server.stop()


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    for line in figures_on_throwaway_cluster(PROJECT_DIR, run):
        print(line, flush=True)


if __name__ == "__main__":
    main()
