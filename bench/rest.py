"""/rest/v1 throughput: a single-row GET by primary key and a 100-row page, as a member under RLS, through the
API server, beside the same transaction (BEGIN READ ONLY, the settings, the statement, COMMIT) over a psycopg
pool with the same concurrency, in the same run.

Prints one JSON line per figure (requests/s, then p50/p99 latency). Runs on a throw-away cluster.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool

from busymate import tokens
from busymate.bench import figure, run_on_throwaway_cluster
from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.api import ApiServer
from busymate.stack.postgres import free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONCURRENCY = 16
SECONDS = 6.0
WORKSPACES = 10
DEVICES_PER_WORKSPACE = 150

_SETTINGS = (
    'select set_config(\'search_path\', \'"public", "public", "extensions"\', true), '
    "set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true), "
    "set_config('request.method', 'GET', true), set_config('request.path', '/devices', true), "
    "set_config('request.headers', '{}', true), set_config('request.cookies', '{}', true), "
    "set_config('request.jwt.claim.sub', %s, true), set_config('statement_timeout', '8s', true)"
)
_COLUMNS = "uuid, workspace_id, owner_user_id, name, source, proxy_port, credential_id, created_at"


def _world(settings: Settings) -> tuple[str, list[str], str]:
    """Workspaces of devices and a member of the first; returns (member token, their device ids, claims)."""
    with psycopg.connect(settings.db_url()) as conn:
        member = str(uuid.uuid4())
        conn.execute(
            "insert into auth.users (id, instance_id, aud, role, email, encrypted_password, "
            "raw_app_meta_data, "
            "raw_user_meta_data, created_at, updated_at) values (%s, '00000000-0000-0000-0000-000000000000', "
            "'authenticated', 'authenticated', 'bench@example.com', '', '{}', '{}', now(), now())",
            (member,),
        )
        conn.execute("update public.profiles set role = 'member' where id = %s", (member,))
        first = None
        for w in range(WORKSPACES):
            ws = conn.execute(
                "insert into public.workspaces (slug, name) values (%s, %s) returning id", (f"b{w}", f"B{w}")
            ).fetchone()
            assert ws is not None
            first = first or ws[0]
            conn.execute(
                "insert into public.devices (workspace_id, name, source, credential_id) "
                "select %s, 'dev-' || %s || '-' || g, 'proxy', gen_random_uuid() "
                "from generate_series(1, %s) as g",
                (ws[0], w, DEVICES_PER_WORKSPACE),
            )
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)", (first, member)
        )
        ids = [
            str(r[0])
            for r in conn.execute("select uuid from public.devices where workspace_id = %s", (first,))
        ]
    now = int(time.time())
    claims = {"sub": member, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 3600}
    return tokens.sign_hs256(claims, settings.jwt_secret), ids, json.dumps(claims)


async def _drive(call: Callable[[], Awaitable[None]]) -> tuple[float, list[float]]:
    """Run `call` from CONCURRENCY workers for SECONDS; requests/s and every latency in ms."""
    latencies: list[float] = []
    deadline = time.perf_counter() + SECONDS

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def _measure(settings: Settings, token: str, ids: list[str], claims: str) -> list[str]:
    headers = {"apikey": tokens.anon_key(settings.jwt_secret), "Authorization": f"Bearer {token}"}
    sub = json.loads(claims)["sub"]
    one_sql = (
        "select coalesce(json_agg(_t), '[]')::text "
        f"from (select {_COLUMNS} from public.devices where uuid = %s) _t"
    )
    page_sql = (
        f"select coalesce(json_agg(_t), '[]')::text from (select {_COLUMNS} from public.devices limit 100) _t"
    )
    lines = []
    host, port = settings.api_host, settings.api_port
    connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONCURRENCY):
        connections.put_nowait(await asyncio.open_connection(host, port))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    async with (
        AsyncConnectionPool(
            settings.db_url(user="authenticator"), min_size=10, max_size=10, kwargs={"autocommit": True}
        ) as pool,
    ):

        async def via_api(query: str) -> None:
            # A keep-alive HTTP/1.1 client on raw sockets: httpx costs more CPU than the server it measures.
            reader, writer = await connections.get()
            writer.write(f"GET /rest/v1/devices?{query} HTTP/1.1\r\nhost: {host}\r\n{head}\r\n".encode())
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            connections.put_nowait((reader, writer))
            assert status.startswith(b"HTTP/1.1 200"), status

        async def via_sql(sql: str, args: tuple[object, ...]) -> None:
            async with pool.connection() as conn:
                await conn.execute("begin isolation level read committed read only")
                await conn.execute(_SETTINGS, (claims, sub))
                cur = await conn.execute(sql, args)
                assert await cur.fetchone() is not None
                await conn.execute("commit")

        cases = (
            (
                "GET one row by primary key",
                lambda: via_api(f"select={_COLUMNS.replace(' ', '')}&uuid=eq.{random.choice(ids)}"),  # noqa: S311
                lambda: via_sql(one_sql, (random.choice(ids),)),  # noqa: S311
            ),
            (
                "GET a 100-row page",
                lambda: via_api(f"select={_COLUMNS.replace(' ', '')}&limit=100"),
                lambda: via_sql(page_sql, ()),
            ),
        )
        for name, api_call, sql_call in cases:
            await _drive(api_call)  # warm up: prepared statements, caches
            await _drive(sql_call)
            api_rate, api_lat = await _drive(api_call)
            sql_rate, sql_lat = await _drive(sql_call)
            base = f"same transaction over a psycopg pool, {CONCURRENCY} in flight"
            lines.append(
                figure(
                    bench="rest",
                    figure=f"{name}, member JWT under RLS, {CONCURRENCY} in flight",
                    value=round(api_rate),
                    unit="requests/s",
                    baseline=base,
                    baseline_value=round(sql_rate),
                )
            )
            for q in (50, 99):
                api_q = statistics.quantiles(api_lat, n=100)[q - 1]
                sql_q = statistics.quantiles(sql_lat, n=100)[q - 1]
                lines.append(
                    figure(
                        bench="rest",
                        figure=f"{name}: p{q} latency",
                        value=round(api_q, 2),
                        unit="ms",
                        baseline=base,
                        baseline_value=round(sql_q, 2),
                    )
                )
    return lines


def run(settings: Settings) -> list[str]:
    """Both cases on one started stack."""
    migrate.reset(settings)
    token, ids, claims = _world(settings)
    settings = settings.with_overrides(api_port=free_port())
    server = ApiServer(settings)
    server.start()
    try:
        return asyncio.run(_measure(settings, token, ids, claims))
    finally:
        server.stop()


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    run_on_throwaway_cluster(PROJECT_DIR, run)


if __name__ == "__main__":
    main()
