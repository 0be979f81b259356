"""/realtime/v1 beside a bare `websockets` relay doing the same job in the same run.

(a) Database to subscriber: a device ingests entries through `ingest_entries` every 10 ms at 1,000 and
    then 5,000 rows per second; 100 subscribers on the private `ws:<workspace>` channel (a member's token)
    time each row from just before its INSERT to its arrival: p50, p95, p99, and whether any row was lost.
    Baseline: the same rows, as the same firehose message, sent every 10 ms to a bare websockets server that
    relays each message to the 100 subscribers (`websockets.broadcast`): no database, no policies, no
    Phoenix framing.
(b) Client broadcast fan-out: 1,000 sockets on one public channel, one more sends MESSAGES broadcasts;
    deliveries per second until every socket has every message. Baseline: the bare relay, 1,000 sockets.

Subscribers run in two child processes (500 sockets each for (b)); the server, Postgres and the clients share
this machine's cores, so both sides carry the same client cost. Prints one JSON line per figure; runs on a
throw-away cluster; BUSYMATE_BENCH_SECONDS sets the length of each latency run (default 10).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import websockets
from psycopg.types.json import Jsonb
from websockets.asyncio.server import broadcast, serve

from busymate import tokens
from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.api_process import ApiServer
from busymate.stack.bench import figure, figures_on_throwaway_cluster
from busymate.stack.postgres import free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("BUSYMATE_BENCH_SECONDS", "10"))
TICK = 0.01
SUBSCRIBERS = 100
FANOUT_SOCKETS = 1000
MESSAGES = 200
COLUMNS = ["id", "device_uuid", "captured_at", "method", "scheme", "host", "path", "query", "status",
           "response_size", "duration_ms", "error"]  # fmt: skip


# -- subscribers (child processes) ------------------------------------------------------------------------


def _rows_of(data: Any) -> list[list[Any]] | None:
    """The firehose rows in a frame: Phoenix v1 object (ours) or the bare message (baseline)."""
    if isinstance(data, dict) and "event" in data:
        if data["event"] != "broadcast":
            return None
        data = data["payload"]["payload"]
    rows = data.get("rows") if isinstance(data, dict) else None
    return rows if isinstance(rows, list) else None


async def _latency_sockets(
    url: str, join: str | None, count: int, expected: int, out: Any, ready: Any
) -> None:
    latencies: list[float] = []
    seen = 0
    at_path = COLUMNS.index("path")
    done = asyncio.Event()

    async def one(primary: bool) -> None:
        nonlocal seen
        async with websockets.connect(url, max_size=None) as ws:
            if join is not None:
                await ws.send(join)
                reply = orjson.loads(await ws.recv())
                assert reply["payload"]["status"] == "ok", reply
            ready.put(1)
            while not done.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                arrived = time.time()
                rows = _rows_of(orjson.loads(raw))
                if rows is None:
                    continue
                for row in rows:
                    latencies.append((arrived - float(row[at_path][1:])) * 1000)
                seen += len(rows)
                if seen >= expected:
                    done.set()

    tasks = [asyncio.create_task(one(i == 0)) for i in range(count)]
    deadline = time.perf_counter() + SECONDS + 60
    while not done.is_set() and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    out.put((seen, latencies))


def latency_worker(url: str, join: str | None, count: int, expected: int, out: Any, ready: Any) -> None:
    """Child process: `count` subscribers, each row's latency in ms, until `expected` rows in all."""
    asyncio.run(_latency_sockets(url, join, count, expected, out, ready))


async def _fanout_sockets(url: str, join: str | None, count: int, out: Any, ready: Any) -> None:
    received = 0
    last = 0.0
    expected = count * MESSAGES
    done = asyncio.Event()

    async def one() -> None:
        nonlocal received, last
        async with websockets.connect(url, max_size=None) as ws:
            if join is not None:
                await ws.send(join)
                await ws.recv()
            ready.put(1)
            while not done.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                if b'"fan"' in (raw if isinstance(raw, bytes) else raw.encode()):
                    received += 1
                    last = time.time()
                    if received >= expected:
                        done.set()

    sem = asyncio.Semaphore(100)

    async def guarded() -> None:
        async with sem:
            pass
        await one()

    tasks = [asyncio.create_task(guarded()) for _ in range(count)]
    deadline = time.perf_counter() + 120
    while not done.is_set() and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    out.put((received, last))


def fanout_worker(url: str, join: str | None, count: int, out: Any, ready: Any) -> None:
    """Child process: `count` sockets counting fan-out messages; reports (received, time of the last)."""
    asyncio.run(_fanout_sockets(url, join, count, out, ready))


# -- the bare relay (child process) ------------------------------------------------------------------------


async def _relay(port: int) -> None:
    clients: set[Any] = set()

    async def handler(ws: Any) -> None:
        clients.add(ws)
        try:
            async for message in ws:
                broadcast([c for c in clients if c is not ws], message)
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, max_size=None, compression=None):
        await asyncio.Future()


def relay_worker(port: int) -> None:
    """Child process: a bare websockets server relaying every message to every other socket."""
    asyncio.run(_relay(port))


# -- load ----------------------------------------------------------------------------------------------------


def _batch(n: int) -> list[dict[str, object]]:
    """n flows whose path carries the time they were sent."""
    sent = f"/{time.time():.6f}"
    now = datetime.now(UTC).isoformat()
    return [
        {
            "id": str(uuid.uuid4()),
            "captured_at": now,
            "method": "GET",
            "host": "bench.example.com",
            "path": sent,
        }
        for _ in range(n)
    ]


def _drive_database(settings: Settings, claims: str, rate: int) -> int:
    per_tick = max(1, int(rate * TICK))
    sent = 0
    with psycopg.connect(settings.db_url(user="authenticator"), autocommit=True) as conn:
        started = time.perf_counter()
        ticks = int(SECONDS / TICK)
        for n in range(ticks):
            delay = started + n * TICK - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with conn.transaction():
                conn.execute(
                    "select set_config('role', 'device', true), set_config('request.jwt.claims', %s, true)",
                    (claims,),
                )
                conn.execute("select public.ingest_entries(%s)", (Jsonb(_batch(per_tick)),))
            sent += per_tick
    return sent


async def _drive_relay(port: int, rate: int) -> int:
    per_tick = max(1, int(rate * TICK))
    sent = 0
    async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None, compression=None) as ws:
        started = time.perf_counter()
        for n in range(int(SECONDS / TICK)):
            delay = started + n * TICK - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            rows = [[r.get(c) for c in COLUMNS] for r in _batch(per_tick)]
            await ws.send(orjson.dumps({"operation": "INSERT", "columns": COLUMNS, "rows": rows}).decode())
            sent += per_tick
    return sent


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return round(cuts[49], 1), round(cuts[94], 1), round(cuts[98], 1)


def _start(ctx: Any, target: Any, *args: Any) -> Any:
    proc = ctx.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def _latency(ctx: Any, url: str, join: str | None, drive: Any, rate: int) -> tuple[int, list[float], int]:
    """Run one latency load with SUBSCRIBERS sockets split over two processes; (sent, latencies, received)."""
    expected = int(SECONDS / TICK) * max(1, int(rate * TICK))
    out, ready = ctx.Queue(), ctx.Queue()
    half = SUBSCRIBERS // 2
    procs = [_start(ctx, latency_worker, url, join, half, expected * half, out, ready) for _ in range(2)]
    for _ in range(SUBSCRIBERS):
        ready.get(timeout=60)
    sent = drive(rate)
    latencies: list[float] = []
    received = 0
    for _ in procs:
        seen, values = out.get(timeout=SECONDS + 90)
        received += seen
        latencies.extend(values)
    for p in procs:
        p.join(5)
    return sent * SUBSCRIBERS, latencies, received


def _fanout(ctx: Any, url: str, join: str | None, publish: Any) -> float:
    """Deliveries per second of MESSAGES broadcasts to FANOUT_SOCKETS sockets."""
    out, ready = ctx.Queue(), ctx.Queue()
    half = FANOUT_SOCKETS // 2
    procs = [_start(ctx, fanout_worker, url, join, half, out, ready) for _ in range(2)]
    for _ in range(FANOUT_SOCKETS):
        ready.get(timeout=120)
    started = time.time()
    asyncio.run(publish())
    received, last = 0, started
    for _ in procs:
        got, at = out.get(timeout=180)
        received += got
        last = max(last, at)
    for p in procs:
        p.join(5)
    if received < FANOUT_SOCKETS * MESSAGES:
        print(f"fan-out: {received} of {FANOUT_SOCKETS * MESSAGES} delivered", file=sys.stderr)
    return received / max(last - started, 1e-6)


def _world(settings: Settings) -> tuple[str, str, str]:
    """A workspace with a member and a paired device: (workspace id, member token, device claims JSON)."""
    with psycopg.connect(settings.db_url()) as conn:
        ws = conn.execute(
            "insert into public.workspaces (slug, name) values ('rt-bench', 'Bench') returning id"
        ).fetchone()
        uid = str(uuid.uuid4())
        conn.execute(
            "insert into auth.users (id, instance_id, aud, role, email, encrypted_password, "
            "raw_app_meta_data, raw_user_meta_data, created_at, updated_at) values (%s, "
            "'00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', "
            "'bench@test.busymate.local', '', '{}', '{}', now(), now())",
            (uid,),
        )
        conn.execute("update public.profiles set role = 'member' where id = %s", (uid,))
        assert ws is not None
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)", (ws[0], uid)
        )
        dev = conn.execute(
            "with d as (insert into public.devices (workspace_id, name, source) "
            "values (%s, 'bench', 'proxy') returning uuid) "
            "insert into private.device_credentials (device_uuid) select uuid from d "
            "returning device_uuid, credential_id",
            (ws[0],),
        ).fetchone()
        assert dev is not None
        conn.commit()
    now = int(time.time())
    member = tokens.sign_hs256(
        {"sub": uid, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 86400},
        settings.jwt_secret,
    )
    claims = orjson.dumps(
        {"role": "device", "sub": str(dev[0]), "workspace_id": str(ws[0]), "cred": str(dev[1])}
    ).decode()
    return str(ws[0]), member, claims


def run(settings: Settings) -> list[str]:
    """Both figures; returns the JSON lines."""
    migrate.reset(settings)
    workspace, member, claims = _world(settings)
    api = settings.with_overrides(api_port=free_port())
    server = ApiServer(api)
    server.start()
    ctx = mp.get_context("spawn")
    relay_port = free_port()
    relay = _start(ctx, relay_worker, relay_port)
    lines = []
    try:
        anon = tokens.anon_key(settings.jwt_secret)
        ours = f"ws://127.0.0.1:{api.api_port}/realtime/v1/websocket?apikey={anon}&vsn=1.0.0"
        bare = f"ws://127.0.0.1:{relay_port}/"
        time.sleep(0.5)
        join = orjson.dumps(
            {
                "topic": f"realtime:ws:{workspace}",
                "event": "phx_join",
                "payload": {"config": {"private": True}, "access_token": member},
                "ref": "1",
                "join_ref": "1",
            }
        ).decode()
        for rate in (1000, 5000):
            sent, lat, received = _latency(
                ctx, ours, join, lambda r: _drive_database(settings, claims, r), rate
            )
            b_sent, b_lat, b_received = _latency(
                ctx, bare, None, lambda r: asyncio.run(_drive_relay(relay_port, r)), rate
            )
            p50, p95, p99 = _percentiles(lat)
            b50, b95, b99 = _percentiles(b_lat)
            for name, value, base in (("p50", p50, b50), ("p95", p95, b95), ("p99", p99, b99)):
                lines.append(
                    figure(
                        bench="realtime",
                        figure=f"database to subscriber {name}, {rate} inserts/s, {SUBSCRIBERS} subscribers "
                        f"(lost {sent - received} of {sent})",
                        value=value,
                        unit="ms",
                        baseline=f"bare websockets relay of the same messages (lost {b_sent - b_received})",
                        baseline_value=base,
                    )
                )
        fan_join = orjson.dumps(
            {
                "topic": "realtime:fan",
                "event": "phx_join",
                "payload": {"config": {}},
                "ref": "1",
                "join_ref": "1",
            }
        ).decode()

        async def publish_ours() -> None:
            async with websockets.connect(ours, max_size=None) as ws:
                await ws.send(fan_join)
                await ws.recv()
                for n in range(MESSAGES):
                    await ws.send(
                        orjson.dumps(
                            {
                                "topic": "realtime:fan",
                                "event": "broadcast",
                                "payload": {"type": "broadcast", "event": "fan", "payload": {"n": n}},
                                "ref": str(n + 2),
                                "join_ref": "1",
                            }
                        ).decode()
                    )
                await asyncio.sleep(1)

        async def publish_bare() -> None:
            async with websockets.connect(bare, max_size=None) as ws:
                for n in range(MESSAGES):
                    await ws.send(
                        orjson.dumps({"type": "broadcast", "event": "fan", "payload": {"n": n}}).decode()
                    )
                await asyncio.sleep(1)

        rate_ours = _fanout(ctx, ours, fan_join, publish_ours)
        rate_bare = _fanout(ctx, bare, None, publish_bare)
        lines.append(
            figure(
                bench="realtime",
                figure=f"client broadcast fan-out, {FANOUT_SOCKETS} sockets, {MESSAGES} messages",
                value=round(rate_ours),
                unit="messages delivered/s",
                baseline="bare websockets relay, same sockets and messages",
                baseline_value=round(rate_bare),
            )
        )
    finally:
        relay.terminate()
        server.stop()
    return lines


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    for line in figures_on_throwaway_cluster(PROJECT_DIR, run):
        print(line, flush=True)


if __name__ == "__main__":
    main()
