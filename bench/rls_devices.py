"""A member listing 100k devices under RLS: the real policy (helpers wrapped in `(select ...)`, run once
as InitPlans) beside the same policy with bare helper calls (run per row), and beside no RLS at all.

Prints one JSON line per figure. Runs on a throw-away cluster.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import psycopg

from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.bench import figure, figures_on_throwaway_cluster

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEVICES = 100_000
ROUNDS = 5
QUERY = "select uuid, name from public.devices"
UNWRAPPED = """
drop policy "devices: select owned, or viewable in my workspaces" on public.devices;
create policy "devices: select owned, or viewable in my workspaces" on public.devices
for select to authenticated
using (owner_user_id = auth.uid() or private.is_admin()
       or (private.has_capability('devices', 'view') and workspace_id = any(private.my_workspaces())));
"""


def _fill(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """A workspace, a member and DEVICES devices owned by someone else; returns the member's claims."""
    ws = conn.execute(
        "insert into public.workspaces (slug, name) values ('bench', 'Bench') returning id"
    ).fetchone()
    member, other = (
        conn.execute(
            "insert into auth.users (id, email, aud, role) values (gen_random_uuid(), %s, 'authenticated', "
            "'authenticated') returning id",
            (email,),
        ).fetchone()
        for email in ("member@bench.local", "other@bench.local")
    )
    assert ws is not None
    assert member is not None
    assert other is not None
    conn.execute("update public.profiles set role = 'member'")
    conn.execute("insert into public.workspace_members values (%s, %s)", (ws[0], member[0]))
    conn.execute("alter table public.devices disable trigger user")
    conn.execute(
        "insert into public.devices (workspace_id, owner_user_id, name, source) "
        "select %s, %s, 'device ' || g, 'proxy' from generate_series(1, %s) as g",
        (ws[0], other[0], DEVICES),
    )
    conn.execute("alter table public.devices enable trigger user")
    conn.execute("analyze public.devices")
    return json.dumps({"sub": str(member[0]), "role": "authenticated"})


def _time(conn: psycopg.Connection[tuple[object, ...]], claims: str | None) -> tuple[float, int]:
    """Median seconds of QUERY as the member (or as the owner when claims is None), and its row count."""
    times, rows = [], 0
    for _ in range(ROUNDS):
        with conn.transaction(force_rollback=True):
            if claims is not None:
                conn.execute(
                    "select set_config('role', 'authenticated', true), "
                    "set_config('request.jwt.claims', %s, true)",
                    (claims,),
                )
            started = time.perf_counter()
            rows = len(conn.execute(QUERY).fetchall())
            times.append(time.perf_counter() - started)
    return statistics.median(times), rows


def _line(label: str, value: float, baseline: str, base: float) -> str:
    return figure(
        bench="rls_devices",
        figure=label,
        value=round(value * 1000, 2),
        unit="ms",
        baseline=baseline,
        baseline_value=round(base * 1000, 2),
    )


def run(settings: Settings) -> list[str]:
    """Measure the three variants in one database; returns the JSON lines."""
    migrate.reset(settings)
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:
        claims = _fill(conn)
        wrapped, rows = _time(conn, claims)
        owner, all_rows = _time(conn, None)
        with conn.transaction(force_rollback=True):
            conn.execute(UNWRAPPED)
            with conn.transaction(force_rollback=True):
                conn.execute(
                    "select set_config('role', 'authenticated', true), "
                    "set_config('request.jwt.claims', %s, true)",
                    (claims,),
                )
                started = time.perf_counter()
                bare_rows = len(conn.execute(QUERY).fetchall())
                bare = time.perf_counter() - started
    assert rows == bare_rows == all_rows == DEVICES, (rows, bare_rows, all_rows)
    return [
        _line(
            f"member lists {DEVICES} devices, helpers wrapped (InitPlan)",
            wrapped,
            "same policy with bare helper calls (per row)",
            bare,
        ),
        _line(
            f"member lists {DEVICES} devices, helpers wrapped (InitPlan)",
            wrapped,
            "the table owner, no RLS",
            owner,
        ),
    ]


def main() -> None:
    """Run on a throw-away cluster and print the figures."""
    for line in figures_on_throwaway_cluster(PROJECT_DIR, run):
        print(line, flush=True)


if __name__ == "__main__":
    main()
