"""/rest/v1 beside exactly the transaction its handler runs, sent straight over psycopg: what HTTP, the
gateway, JWT checks, query parsing and SQL building cost, for a member under RLS.

Two requests, each driven for DURATION seconds with CONCURRENCY in flight:
  (i)  one row by primary key: GET /rest/v1/devices?select=*&uuid=eq.<one of the member's devices>
  (ii) a page of 100 rows:     GET /rest/v1/devices?select=*&limit=100
The member sees 250 of 1000 devices in four workspaces, so the devices policy does real work.

The baseline runs, per request, what gateway/rest/execute.py `_execute` runs: BEGIN READ ONLY; the
handler's own `SETTINGS_SQL` with the same nine values (claims, request headers, legacy claims, the role's
settings); the main statement `read.read` builds for this request (every column, the same limit,
the same envelope); ROLLBACK, as the handler ends read-only transactions. It uses an AsyncConnectionPool of
`authenticator` connections as large as the server's, with the same number of requests in flight. Before
timing, both paths must return the same rows.

The load generator is a minimal keep-alive HTTP/1.1 client on asyncio streams: httpx.AsyncClient costs more
CPU per request than the server it would measure on this machine. Its figure is printed too, beside the raw
client's.
CPU time per request of the load generator, the API server and Postgres goes to stderr.

bench/rest.py measures the same two requests against a lighter hand-written transaction (a few columns, fixed
settings, no envelope); this one holds the baseline to the handler's exact work.

Prints one JSON line per figure. Runs on a throw-away cluster; BUSYMATE_BENCH_SECONDS changes DURATION.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

import httpx
import orjson
import psycopg
import uvloop
from psycopg_pool import AsyncConnectionPool

from busymate import tokens
from busymate.gateway.rest import schema as schema_cache
from busymate.gateway.rest.execute import SETTINGS_SQL  # the very statement the handler runs
from busymate.gateway.rest.schema import quote
from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.api_process import ApiServer
from busymate.stack.bench import figure, figures_on_throwaway_cluster
from busymate.stack.postgres import free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
WORKSPACES = 4
DEVICES_PER_WORKSPACE = 250
CONCURRENCY = 32
DURATION = float(os.environ.get("BUSYMATE_BENCH_SECONDS", "8"))
WARMUP = 1.5
PAGE = 100

type Conn = psycopg.Connection[tuple[object, ...]]
type Send = Callable[[], Awaitable[None]]


@dataclass
class Member:
    """The member's token and claims, and the devices they see."""

    token: str
    claims: dict[str, object]
    devices: list[str]


def _world(conn: Conn, settings: Settings) -> Member:
    """WORKSPACES workspaces of DEVICES_PER_WORKSPACE devices owned by someone else; a member of the first."""
    spaces = [
        str(row[0])
        for row in conn.execute(
            "insert into public.workspaces (slug, name) select 'bench-' || g, 'Bench ' || g "
            "from generate_series(1, %s) as g returning id",
            (WORKSPACES,),
        ).fetchall()
    ]
    member, other = str(uuid.uuid4()), str(uuid.uuid4())
    for uid, email in ((member, "member@bench.local"), (other, "other@bench.local")):
        conn.execute(
            "insert into auth.users (id, email, aud, role) values (%s, %s, 'authenticated', 'authenticated')",
            (uid, email),
        )
    conn.execute("update public.profiles set role = 'member' where id = %s", (member,))
    conn.execute(
        "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)", (spaces[0], member)
    )
    for ws in spaces:
        conn.execute(
            "insert into public.devices (workspace_id, owner_user_id, name, source, model, os) "
            "select %s, %s, 'device ' || g, 'proxy', 'Model ' || (g %% 7), 'os ' || (g %% 3) "
            "from generate_series(1, %s) as g",
            (ws, other, DEVICES_PER_WORKSPACE),
        )
    conn.execute("analyze public.devices, public.workspaces, public.workspace_members, public.profiles")
    visible = [
        str(r[0])
        for r in conn.execute("select uuid from public.devices where workspace_id = %s", (spaces[0],))
    ]
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": member, "role": "authenticated", "aud": "authenticated", "email": "member@bench.local",
        "iat": now, "exp": now + 3600, "iss": f"{settings.api_url}/auth/v1", "session_id": str(uuid.uuid4()),
        "app_metadata": {"provider": "email"}, "user_metadata": {},
    }  # fmt: skip
    return Member(tokens.sign_hs256(claims, settings.jwt_secret), claims, visible)


# -- the two paths -------------------------------------------------------------------------------------------


class RawHttp:
    """One keep-alive HTTP/1.1 connection: write a GET, read the head, read Content-Length bytes."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        """Status and body of GET `target`, on a fresh connection if the server closed the idle one."""
        for attempt in range(2):
            if self.reader is None or self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(f"GET {target} HTTP/1.1\r\n{self.head}\r\n".encode())
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if attempt:
                    raise
                continue
            at = head.lower().index(b"\r\ncontent-length:") + 17
            return int(head[9:12]), await self.reader.readexactly(int(head[at : head.index(b"\r\n", at)]))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the socket."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Sql:
    """The handler's transaction for one request shape, over a pool of `authenticator` connections."""

    pool: AsyncConnectionPool
    settings: list[object]
    statement: str

    async def body(self, params: dict[str, object]) -> str:
        """Run the transaction; the response body the main statement built."""
        async with self.pool.connection() as conn:
            await conn.execute("begin isolation level read committed read only")
            await conn.execute(SETTINGS_SQL, self.settings)
            cur = await conn.execute(self.statement, params)
            row = await cur.fetchone()
            await conn.execute("rollback")
        assert row is not None
        return str(row[2])


def _statement(columns: list[str], where: str, limit: str) -> str:
    """The main statement `_read` and `_envelope` build for GET /devices?select=*[&uuid=eq.x][&limit=n]."""
    cols = ", ".join(f'"devices".{quote(c)} as {quote(c)}' for c in columns)
    page = f'select {cols} from "public"."devices" as "devices"{where} limit {limit}'
    return (
        "select null::bigint, count(_t), coalesce(json_agg(_t), '[]')::text, null::bigint, "
        "nullif(current_setting('response.headers', true), ''), "
        f"nullif(current_setting('response.status', true), '') from ({page}) as _t"
    )


def _settings_values(
    member: Member, headers: dict[str, str], path: str, role: dict[str, str]
) -> list[object]:
    """The nine values the handler's `run` binds to `SETTINGS_SQL` for this member and these headers."""
    legacy = {
        k: v for k, v in member.claims.items() if isinstance(v, str | int | float) and not isinstance(v, bool)
    }
    return [
        '"public", "public", "extensions"', "authenticated", orjson.dumps(member.claims).decode(), "GET",
        path, orjson.dumps(headers).decode(), "{}", orjson.dumps(legacy).decode(),
        orjson.dumps(role).decode(),
    ]  # fmt: skip


# -- driving them --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one timed run measured."""

    rate: float  # requests per second
    p50: float  # ms
    p99: float  # ms
    cpu: dict[str, float]  # CPU seconds per request, by process group


async def _drive(workers: list[Send], duration: float, cpu: Callable[[], dict[str, float]]) -> Run:
    """Every worker sends back to back for `duration` seconds; the latency of each request."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def loop(send: Send) -> None:
        while (started := time.perf_counter()) < deadline:
            await send()
            latencies.append(time.perf_counter() - started)

    before = cpu()
    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in workers))
    elapsed = time.perf_counter() - started
    after = cpu()
    cuts = statistics.quantiles(latencies, n=100)
    n = len(latencies)
    return Run(n / elapsed, cuts[49] * 1000, cuts[98] * 1000, {k: (after[k] - before[k]) / n for k in after})


def _cpu_probe(server_pid: int, postmaster_pid: int) -> Callable[[], dict[str, float]]:
    """CPU seconds used so far by this process, the API server and every Postgres process."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(pid: int) -> tuple[int, float]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick  # ppid, utime + stime

    def probe() -> dict[str, float]:
        postgres = 0.0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    ppid, used = stat(int(entry.name))
                except (OSError, IndexError, ValueError):
                    continue
                if int(entry.name) == postmaster_pid or ppid == postmaster_pid:
                    postgres += used
        times = os.times()
        return {"load": times.user + times.system, "api": stat(server_pid)[1], "postgres": postgres}

    return probe


async def _measure(settings: Settings, api: Settings, member: Member, server_pid: int) -> list[str]:
    host, port = api.api_host, api.api_port
    headers = {"host": f"{host}:{port}", "apikey": tokens.anon_key(api.jwt_secret),
               "authorization": f"Bearer {member.token}", "accept": "*/*"}  # fmt: skip
    with psycopg.connect(settings.db_url(user="authenticator"), autocommit=True) as conn:
        cache = schema_cache.load(conn, ("public",))
    columns = list(cache.relations[("public", "devices")].columns)
    role = cache.role_settings.get("authenticated", {})
    cpu = _cpu_probe(server_pid, int((settings.data_dir / "postmaster.pid").read_text().split()[0]))
    # The same requests in the same shuffled order for both paths.
    shuffled = random.Random(7).sample(member.devices, len(member.devices))  # noqa: S311 (not for security)
    row_targets, row_ids = (
        cycle([f"/rest/v1/devices?select=*&uuid=eq.{d}" for d in shuffled]),
        cycle(shuffled),
    )
    page_target = f"/rest/v1/devices?select=*&limit={PAGE}"
    max_rows = settings.max_rows or 1000
    pool = AsyncConnectionPool(
        settings.db_url(user="authenticator"), min_size=settings.db_pool_size, max_size=settings.db_pool_size,
        kwargs={"autocommit": True}, open=False,
    )  # fmt: skip
    await pool.open(wait=True)
    conns = [RawHttp(host, port, headers) for _ in range(CONCURRENCY)]
    try:
        row = Sql(pool, _settings_values(member, headers, "/devices", role),
                  _statement(columns, ' where "devices"."uuid" = %(p0)s', "%(p1)s"))  # fmt: skip
        page = Sql(
            pool, _settings_values(member, headers, "/devices", role), _statement(columns, "", "%(p0)s")
        )

        # The two paths answer alike, row for row.
        probe = member.devices[0]
        status, body = await conns[0].get(f"/rest/v1/devices?select=*&uuid=eq.{probe}")
        assert status == 200, (status, body)
        assert json.loads(body) == json.loads(await row.body({"p0": probe, "p1": max_rows}))
        status, body = await conns[0].get(page_target)
        http_rows, sql_rows = json.loads(body), json.loads(await page.body({"p0": PAGE}))
        assert status == 200, (status, body)
        assert len(http_rows) == PAGE, len(http_rows)
        assert sorted(http_rows, key=str) == sorted(sql_rows, key=str)

        def over_http(c: RawHttp, targets: Callable[[], str]) -> Send:
            async def send() -> None:
                status, _ = await c.get(targets())
                assert status == 200, status

            return send

        async def sql_row() -> None:
            await row.body({"p0": next(row_ids), "p1": max_rows})

        async def sql_page() -> None:
            await page.body({"p0": PAGE})

        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=api.api_url, limits=limits, headers=headers) as client:

            async def httpx_row() -> None:
                response = await client.get(next(row_targets))
                assert response.status_code == 200, response.status_code

            plans: dict[str, list[Send]] = {
                "http row": [over_http(c, lambda: next(row_targets)) for c in conns],
                "sql row": [sql_row] * CONCURRENCY,
                "http page": [over_http(c, lambda: page_target) for c in conns],
                "sql page": [sql_page] * CONCURRENCY,
                "httpx row": [httpx_row] * CONCURRENCY,
            }
            runs: dict[str, Run] = {}
            for name, workers in plans.items():
                await _drive(workers, WARMUP, cpu)
                runs[name] = await _drive(workers, DURATION, cpu)
    finally:
        for c in conns:
            c.close()
        await pool.close()
    return _report(runs, settings.db_pool_size)


def _report(runs: dict[str, Run], pool_size: int) -> list[str]:
    for name, run in runs.items():
        per = ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in run.cpu.items())
        rates = f"{run.rate:.0f} req/s, p50 {run.p50:.2f} ms, p99 {run.p99:.2f} ms"
        print(f"# {name}: {rates}; CPU per request: {per}", file=sys.stderr)
    sql = f"the handler's transaction over psycopg ({CONCURRENCY} in flight, {pool_size} connections)"
    lines = []
    for shape, what in (("row", "one device by uuid"), ("page", f"a page of {PAGE} devices")):
        http, base = runs[f"http {shape}"], runs[f"sql {shape}"]
        label = f"GET /rest/v1/devices, {what}, member under RLS, {CONCURRENCY} in flight"
        lines += [
            figure(bench="rest", figure=f"{label}: requests/s", value=round(http.rate), unit="req/s",
                   baseline=sql, baseline_value=round(base.rate)),
            figure(bench="rest", figure=f"{label}: p50 latency", value=round(http.p50, 2), unit="ms",
                   baseline=f"p50 of {sql}", baseline_value=round(base.p50, 2)),
            figure(bench="rest", figure=f"{label}: p99 latency", value=round(http.p99, 2), unit="ms",
                   baseline=f"p99 of {sql}", baseline_value=round(base.p99, 2)),
        ]  # fmt: skip
    lines.append(
        figure(bench="rest", figure=f"one device by uuid, load from httpx.AsyncClient ({CONCURRENCY})",
               value=round(runs["httpx row"].rate), unit="req/s", baseline="the raw asyncio HTTP/1.1 client",
               baseline_value=round(runs["http row"].rate))
    )  # fmt: skip
    return lines


def run(settings: Settings) -> list[str]:
    """Reset, fill, start the API server, measure, stop it."""
    migrate.reset(settings)
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:
        member = _world(conn, settings)
    api = settings.with_overrides(api_port=free_port())
    server = ApiServer(api)
    pid = server.start()
    try:
        return asyncio.run(_measure(settings, api, member, pid), loop_factory=uvloop.new_event_loop)
    finally:
        server.stop()


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    for line in figures_on_throwaway_cluster(PROJECT_DIR, run):
        print(line, flush=True)


if __name__ == "__main__":
    main()
