"""Whether a subscriber could read a row that is gone: the DELETE side of postgres_changes' RLS.

Realtime sends a DELETE on a table with RLS as the primary key only, to every subscriber, since the row can no
longer be read back. Its filters, though, would see the whole old row, so a filter on another column answers
"was it this value?" about rows the subscriber may not read (issue 15, item 8). So a DELETE is matched on a
non-key column only for a subscriber whose SELECT policies pass on the old row: the policies' expressions
(deparsed by Postgres, fully qualified) are evaluated, as the subscriber with its claims, over the old values
cast to the table's row type. One query per (table, claims) per poll, like the INSERT/UPDATE checks.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from psycopg import sql

from busymate.gateway.realtime.catalog import Policies, Table


def _expression(text: str) -> sql.SQL:
    """A policy expression from the catalog (never request text); a `%` in it is not a placeholder."""
    return sql.SQL(text.replace("%", "%%"))


def _query(table: Table, policies: Policies) -> sql.Composed:
    columns = [name for name, _ in table.columns]
    permissive = sql.SQL(" or ").join(sql.SQL("({})").format(_expression(q)) for q in policies.permissive)
    restrictive = sql.SQL(" and ").join(sql.SQL("({})").format(_expression(q)) for q in policies.restrictive)
    alias = sql.Identifier(table.name)  # the policies name the table's columns as <table>.<column>
    return sql.SQL(
        "select jsonb_build_array({keys})::text "
        "from (select {casts} from pg_catalog.jsonb_to_recordset(%(rows)s::jsonb) as k ({texts})) as {alias} "
        "where pg_catalog.has_any_column_privilege((pg_catalog.quote_ident(%(schema)s) || '.' || "
        "pg_catalog.quote_ident(%(table)s))::pg_catalog.regclass, 'SELECT') "
        "and ({permissive}) and ({restrictive})"
    ).format(
        keys=sql.SQL(", ").join(sql.SQL("{}.{}::text").format(alias, sql.Identifier(c)) for c in table.pk),
        casts=sql.SQL(", ").join(
            sql.SQL("k.{c}::{t} as {c}").format(c=sql.Identifier(c), t=sql.SQL(table.sql_types[c]))
            for c in columns
        ),
        texts=sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns),
        alias=alias,
        permissive=permissive if policies.permissive else sql.SQL("false"),
        restrictive=restrictive if policies.restrictive else sql.SQL("true"),
    )


async def readable(
    conn: psycopg.AsyncConnection[Any],
    table: Table,
    policies: Policies,
    role: str,
    claims: str,
    rows: list[dict[str, str | None]],
) -> set[str]:
    """The keys (a JSON array of their text) of the old `rows` (column -> Postgres text) that `role` with
    `claims` could select, under its policies as they are now; run inside a transaction that rolls back."""
    await conn.execute(
        "select set_config('role', %(role)s, true), set_config('request.jwt.claims', %(claims)s, true), "
        "set_config('search_path', '', true)",
        {"role": role, "claims": claims},
    )
    params = {"rows": orjson.dumps(rows).decode(), "schema": table.schema, "table": table.name}
    cur = await conn.execute(_query(table, policies), params)
    return {orjson.dumps(orjson.loads(r[0])).decode() for r in await cur.fetchall()}
