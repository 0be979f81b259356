"""Ingest through /functions/v1/ingest beside `rpc/ingest_entries` called directly, in the same run:
batches of BATCH entries under one device token, one call in flight (as a capture client's spool sends
them), over HTTP to a real API server, with the firehose on. Both send bytes encoded once with orjson before
timing; the function's extra cost is its hop (parse the body once, pass the bytes to /rest/v1 over loopback).
A third path sends the batches gzip-compressed (compression counted, as a client pays it). The paths take
turns batch by batch, so a busy moment of a shared machine falls on each alike, and each figure is BATCH rows
over its median call. Goal: the function at least 0.8 of direct.

Prints one JSON line per figure. Runs on a throw-away cluster.
"""

from __future__ import annotations

import base64
import gzip
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import psycopg

from busymate import tokens
from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.api_process import ApiServer
from busymate.stack.bench import figure, figures_on_throwaway_cluster
from busymate.stack.postgres import free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
ROWS = 30_000
ROUNDS = 5
BATCH = 500
HOSTS = 500
BODY = base64.b64encode(b'{"ok": true, "items": [1, 2, 3], "note": "a small JSON response body"}').decode()

type Conn = psycopg.Connection[tuple[object, ...]]
type Post = Callable[[bytes], httpx.Response]


def _batches() -> list[bytes]:
    """ROWS captured flows as bmc sends them (new ids at each call), as {"batch": [...]} bodies of BATCH
    entries."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "captured_at": (start + timedelta(milliseconds=i)).isoformat(),
            "method": "GET" if i % 3 else "POST",
            "host": f"api{i % HOSTS}.example.com",
            "path": f"/v1/items/{i}",
            "status": 200,
            "duration_ms": 12.5,
            "request_headers": [["Accept", "application/json"], ["Authorization", "Bearer abc"]],
            "response_headers": [["Content-Type", "application/json"]],
            "response_body_b64": BODY,
            "request_body_state": "none",
            "response_body_state": "captured" if i % 10 else "evicted",
        }
        for i in range(ROWS)
    ]
    return [orjson.dumps({"batch": rows[i : i + BATCH]}) for i in range(0, ROWS, BATCH)]


def _device_token(conn: Conn, settings: Settings) -> str:
    """A workspace, a paired bmc device and its token, signed as `pair` signs one."""
    ws = conn.execute(
        "insert into public.workspaces (slug, name) values ('bench', 'Bench') returning id"
    ).fetchone()
    assert ws is not None
    dev = conn.execute(
        "with d as (insert into public.devices (workspace_id, name, source) values (%s, 'bench', 'bmc') "
        "returning uuid) insert into private.device_credentials (device_uuid) select uuid from d "
        "returning device_uuid, credential_id",
        (ws[0],),
    ).fetchone()
    assert dev is not None
    now = int(time.time())
    claims = {
        "iss": f"{settings.api_url}/auth/v1", "sub": str(dev[0]), "aud": "authenticated", "role": "device",
        "workspace_id": str(ws[0]), "cred": str(dev[1]), "iat": now, "exp": now + 3600,
    }  # fmt: skip
    return tokens.sign_hs256(claims, settings.jwt_secret)


def _send(post: Post, body: bytes) -> float:
    """Seconds for one call, which must store every row of its batch."""
    started = time.perf_counter()
    response = post(body)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == BATCH, response.text
    return elapsed


def run(settings: Settings) -> list[str]:
    """Reset, start the API server, send through every path in turn, stop it."""
    migrate.reset(settings)
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:
        token = _device_token(conn, settings)
    api = settings.with_overrides(api_port=free_port())
    server = ApiServer(api)
    server.start()
    headers = {
        "apikey": tokens.anon_key(api.jwt_secret),
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
    }
    try:
        with (
            httpx.Client(base_url=api.api_url, headers=headers, timeout=120) as http,
            psycopg.connect(settings.db_url(), autocommit=True) as conn,
        ):
            posts: dict[str, Post] = {
                "direct": lambda body: http.post("/rest/v1/rpc/ingest_entries", content=body),
                "function": lambda body: http.post("/functions/v1/ingest", content=body),
                "gzip": lambda body: http.post(
                    "/functions/v1/ingest",
                    content=gzip.compress(body, compresslevel=1),
                    headers={"content-encoding": "gzip"},
                ),
            }
            # each path its own rows (the same shapes, other ids), so none meets another's as duplicates
            batches = {name: _batches() for name in posts}
            for post in posts.values():  # warm up: the function's module, the connections
                _send(post, _batches()[0])
            seconds: dict[str, list[float]] = {name: [] for name in posts}
            names = list(posts)
            for _ in range(ROUNDS):
                conn.execute("truncate public.entries, realtime.messages")
                # Interleaved batch by batch, the order turning: a busy moment of the machine (other work
                # on it, a checkpoint) falls on every path alike.
                for i in range(ROWS // BATCH):
                    for name in names[i % 3 :] + names[: i % 3]:
                        seconds[name].append(_send(posts[name], batches[name][i]))
    finally:
        server.stop()
    rate = {name: BATCH / statistics.median(each) for name, each in seconds.items()}
    direct = "rpc/ingest_entries direct over HTTP, same batches"
    return [
        figure(
            bench="ingest_function",
            figure=f"/functions/v1/ingest, batches of {BATCH}, one in flight (median call, {ROUNDS} rounds)",
            value=round(rate["function"]),
            unit="rows/s",
            baseline=direct,
            baseline_value=round(rate["direct"]),
        ),
        figure(
            bench="ingest_function",
            figure=f"/functions/v1/ingest, gzip level 1 (counted), batches of {BATCH} (median call)",
            value=round(rate["gzip"]),
            unit="rows/s",
            baseline=direct,
            baseline_value=round(rate["direct"]),
        ),
    ]


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    for line in figures_on_throwaway_cluster(PROJECT_DIR, run):
        print(line, flush=True)


if __name__ == "__main__":
    main()
