"""Ingest throughput: ingest_entries in batches of 500 under a device credential with the firehose on, beside
COPY of the same rows into the same table with no triggers, in the same run. Both encode JSON with orjson, as
the capture clients do.

Prints one JSON line per figure. Runs on a throw-away cluster.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_dumps

from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.bench import figure, figures_on_throwaway_cluster

PROJECT_DIR = Path(__file__).resolve().parent.parent
ROWS = 50_000
ROUNDS = 5
BATCH = 500
HOSTS = 500
BODY = base64.b64encode(b'{"ok": true, "items": [1, 2, 3], "note": "a small JSON response body"}').decode()

type Conn = psycopg.Connection[tuple[object, ...]]


def _rows() -> list[dict[str, object]]:
    """ROWS captured flows as a capture client would send them."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    return [
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
        }
        for i in range(ROWS)
    ]


def _device(conn: Conn) -> str:
    """A workspace and a paired proxy device; returns the device's JWT claims."""
    ws = conn.execute(
        "insert into public.workspaces (slug, name) values ('bench', 'Bench') returning id"
    ).fetchone()
    assert ws is not None
    dev = conn.execute(
        "with d as (insert into public.devices (workspace_id, name, source) values (%s, 'bench', 'proxy') "
        "returning uuid) insert into private.device_credentials (device_uuid) select uuid from d "
        "returning device_uuid, credential_id",
        (ws[0],),
    ).fetchone()
    assert dev is not None
    return json.dumps({"role": "device", "sub": str(dev[0]), "workspace_id": str(ws[0]), "cred": str(dev[1])})


def _ingest(conn: Conn, claims: str, rows: list[dict[str, object]]) -> float:
    """Seconds to ingest every row, one transaction per batch as PostgREST would run it."""
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        with conn.transaction():
            conn.execute(
                "select set_config('role', 'device', true), set_config('request.jwt.claims', %s, true)",
                (claims,),
            )
            result = conn.execute(
                "select public.ingest_entries(%s)", (Jsonb(rows[i : i + BATCH]),)
            ).fetchone()
            assert result is not None
            outcome = cast(dict[str, object], result[0])
            assert outcome["inserted"] == len(rows[i : i + BATCH]), outcome
    return time.perf_counter() - started


def _copy(conn: Conn, claims: str, rows: list[dict[str, object]]) -> float:
    """Seconds to COPY the same rows, already in column form, with the table's triggers off."""
    meta = json.loads(claims)
    body = base64.b64decode(BODY)
    conn.execute("alter table public.entries disable trigger user")
    started = time.perf_counter()
    with (
        conn.transaction(),
        conn.cursor() as cur,
        cur.copy(
            "copy public.entries (id, workspace_id, device_uuid, source, captured_at, method, host, path, "
            "status, duration_ms, request_headers, response_headers, response_body, response_body_size) "
            "from stdin"
        ) as copy,
    ):
        for r in rows:
            copy.write_row(
                (
                    r["id"],
                    meta["workspace_id"],
                    meta["sub"],
                    "proxy",
                    r["captured_at"],
                    r["method"],
                    r["host"],
                    r["path"],
                    r["status"],
                    r["duration_ms"],
                    Jsonb(r["request_headers"]),
                    Jsonb(r["response_headers"]),
                    body,
                    len(body),
                )
            )
    elapsed = time.perf_counter() - started
    conn.execute("alter table public.entries enable trigger user")
    return elapsed


def run(settings: Settings) -> list[str]:
    """Both figures in one database; returns the JSON line."""
    migrate.reset(settings)
    rows = _rows()
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:
        # One JSON encoder for both paths, the one capture clients use.
        set_json_dumps(orjson.dumps, conn)
        claims = _device(conn)
        ingests, copies = [], []
        for _ in range(ROUNDS):  # alternate, so a warm cache or a checkpoint favours neither
            conn.execute("truncate public.entries, realtime.messages")
            ingests.append(_ingest(conn, claims, rows))
            published = conn.execute(
                "select count(*), sum((payload ->> 'count')::integer) from realtime.messages "
                "where topic like 'ws:%'"
            ).fetchone()
            # one firehose message per batch, every row once
            assert published == (ROWS // BATCH, ROWS), published
            conn.execute("truncate public.entries")
            copies.append(_copy(conn, claims, rows))
    ingest, copy = statistics.median(ingests), statistics.median(copies)
    ingest_rate, copy_rate = ROWS / ingest, ROWS / copy
    return [
        figure(
            bench="ingest",
            figure=f"ingest_entries, batches of {BATCH}, firehose on (median of {ROUNDS})",
            value=round(ingest_rate),
            unit="rows/s",
            baseline="COPY of the same rows, no triggers",
            baseline_value=round(copy_rate),
        )
    ]


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    for line in figures_on_throwaway_cluster(PROJECT_DIR, run):
        print(line, flush=True)


if __name__ == "__main__":
    main()
