"""inspect_requests latency on a workspace with 5 million entries over 30 days and 500 hosts, as a member
under RLS, beside the same newest-flows query run by the table owner without RLS, in the same run.

Prints one JSON line per figure. Runs on a throw-away cluster; BUSYMATE_BENCH_ROWS changes the row count.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from pathlib import Path

import psycopg

from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.bench import figure, figures_on_throwaway_cluster

PROJECT_DIR = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BUSYMATE_BENCH_ROWS", "5000000"))
DAYS = 30
HOSTS = 500
CALLS = 300
OWNER_QUERY = (
    "select id, captured_at, method, host, path, status, request_headers, response_headers "
    "from public.entries where workspace_id = (select id from public.workspaces where slug = 'bench') "
    "and host = %s order by captured_at desc limit 20"
)

type Conn = psycopg.Connection[tuple[object, ...]]


def _fill(conn: Conn) -> str:
    """A workspace, a member with entries:view, a device, ROWS entries; returns the member's claims."""
    ws = conn.execute(
        "insert into public.workspaces (slug, name) values ('bench', 'Bench') returning id"
    ).fetchone()
    member = conn.execute(
        "insert into auth.users (id, email, aud, role) values (gen_random_uuid(), 'm@bench.local', "
        "'authenticated', 'authenticated') returning id"
    ).fetchone()
    assert ws is not None
    assert member is not None
    conn.execute("update public.profiles set role = 'member'")
    conn.execute("insert into public.workspace_members values (%s, %s)", (ws[0], member[0]))
    dev = conn.execute(
        "insert into public.devices (workspace_id, name, source) values (%s, 'bench', 'proxy') "
        "returning uuid",
        (ws[0],),
    ).fetchone()
    assert dev is not None
    conn.execute(
        "select count(*) from private.ensure_entry_partitions("
        "(now() at time zone 'UTC')::date - %s, (now() at time zone 'UTC')::date)",
        (DAYS,),
    )
    conn.execute("alter table public.entries disable trigger user")
    step = 500_000
    for first in range(0, ROWS, step):
        conn.execute(
            "insert into public.entries (workspace_id, device_uuid, source, captured_at, method, host, path, "
            "status, request_headers, response_headers) "
            "select %s, %s, 'proxy', now() - (random() * interval '30 days'), 'GET', "
            "'api' || (g %% %s) || '.example.com', '/v1/items/' || g, 200, "
            '\'[["Authorization", "Bearer secret"], ["Accept", "*/*"]]\', '
            '\'[["Content-Type", "text/html"]]\' '
            "from generate_series(%s::bigint, %s::bigint) as g",
            (ws[0], dev[0], HOSTS, first, min(first + step, ROWS) - 1),
        )
    conn.execute("alter table public.entries enable trigger user")
    conn.execute("vacuum analyze public.entries")
    return json.dumps({"sub": str(member[0]), "role": "authenticated"})


def _latencies(conn: Conn, sql: str, claims: str | None) -> list[float]:
    """Milliseconds per call of `sql` for random hosts, as the member (claims) or as the owner."""
    rng = random.Random(7)  # noqa: S311 - host choice, not security
    out = []
    for _ in range(CALLS):
        host = f"api{rng.randrange(HOSTS)}.example.com"
        with conn.transaction(force_rollback=True):
            if claims is not None:
                conn.execute(
                    "select set_config('role', 'authenticated', true), "
                    "set_config('request.jwt.claims', %s, true)",
                    (claims,),
                )
            started = time.perf_counter()
            rows = conn.execute(sql, (host,)).fetchall()
            out.append((time.perf_counter() - started) * 1000)
        assert len(rows) == 20, len(rows)
    return out


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def run(settings: Settings) -> list[str]:
    """Fill, then time both; returns the JSON lines."""
    migrate.reset(settings)
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:
        started = time.perf_counter()
        claims = _fill(conn)
        print(f"# filled {ROWS} entries in {time.perf_counter() - started:.0f} s", flush=True)
        member = _latencies(conn, "select * from public.inspect_requests(%s, 20)", claims)
        owner = _latencies(conn, OWNER_QUERY, None)
    lines = []
    for q in (50, 95):
        value, base = _p(member, q), _p(owner, q)
        lines.append(
            figure(
                bench="inspect",
                figure=f"inspect_requests p{q}, member under RLS, {ROWS} entries, {DAYS} days, {HOSTS} hosts",
                value=round(value, 2),
                unit="ms",
                baseline=f"p{q}, same newest-20 query for the workspace as the owner (no RLS, no redaction)",
                baseline_value=round(base, 2),
            )
        )
    return lines


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    for line in figures_on_throwaway_cluster(PROJECT_DIR, run):
        print(line, flush=True)


if __name__ == "__main__":
    main()
