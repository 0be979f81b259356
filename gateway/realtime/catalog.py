"""What postgres_changes reads from the catalog: published tables, their columns and keys, column privileges
per role, and the SELECT policies that decide whether a deleted row was readable.

All of it goes through one connection (as the `postgres` role, `search_path = ''`) held by this object and
reused, so subscribing many bindings never opens a connection each; answers are cached, since publications,
columns, grants and policies change with migrations, not with requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

log = logging.getLogger("busymate.realtime")

PUBLICATION = "supabase_realtime"
APPLICATION_NAME = "busymate realtime"
CACHE_TTL = 30.0


@dataclass
class Table:
    """What postgres_changes needs to know about a published table."""

    schema: str
    name: str
    columns: list[tuple[str, str]]  # (name, typname) in attnum order
    types: dict[str, str]
    sql_types: dict[str, str]  # name -> format_type, for casts in the RLS checks
    pk: list[str]
    rls: bool
    selectable: dict[str, set[str]] = field(default_factory=dict)  # role -> columns


@dataclass(frozen=True, slots=True)
class Policies:
    """The USING expressions of a table's SELECT policies that apply to one role, deparsed fully qualified."""

    permissive: tuple[str, ...]
    restrictive: tuple[str, ...]


class Catalog:
    """One catalog connection and what it has read."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.tables: dict[tuple[str, str], Table] = {}
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._published: dict[tuple[str, str], tuple[float, list[tuple[str, str]]]] = {}
        self._policies: dict[tuple[str, str, str], tuple[float, Policies | None]] = {}

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The catalog connection, to one caller at a time; opened again after it was lost."""
        async with self._lock:
            conn = self._conn
            if conn is None or conn.closed or conn.broken:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name=APPLICATION_NAME, connect_timeout=10
                )
                await conn.execute("set search_path = ''")
                self._conn = conn
            yield conn

    async def close(self) -> None:
        """Close the connection (the server is stopping)."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def published(self, schema: str, table: str) -> list[tuple[str, str]]:
        """The publication's tables a binding's schema and table (either may be `*`) name, described."""
        now = asyncio.get_running_loop().time()
        cached = self._published.get((schema, table))
        if cached is not None and now - cached[0] < CACHE_TTL:
            return cached[1]
        async with self.connection() as conn:
            cur = await conn.execute(
                "select schemaname::text, tablename::text from pg_catalog.pg_publication_tables "
                "where pubname = %(pub)s and schemaname like %(s)s and tablename like %(t)s order by 1, 2",
                {
                    "pub": PUBLICATION,
                    "s": "%" if schema == "*" else schema,
                    "t": "%" if table == "*" else table,
                },
            )
            found = [(r[0], r[1]) for r in await cur.fetchall()]
            for entity in found:
                if entity not in self.tables:
                    self.tables[entity] = await _describe(conn, *entity)
        if found:  # a table may be published a moment later: only a match is remembered
            self._published[(schema, table)] = (now, found)
        return found

    async def selectable(self, table: Table, role: str) -> set[str]:
        """The columns of `table` that `role` may select (none when the role does not exist)."""
        known = table.selectable.get(role)
        if known is not None:
            return known
        try:
            async with self.connection() as conn:
                cur = await conn.execute(
                    "select a.attname::text from pg_catalog.pg_attribute as a "
                    "where a.attrelid = (pg_catalog.quote_ident(%(s)s) || '.' || "
                    "pg_catalog.quote_ident(%(t)s))::pg_catalog.regclass "
                    "and a.attnum > 0 and not a.attisdropped "
                    "and pg_catalog.has_column_privilege(%(role)s, a.attrelid, a.attnum, 'SELECT')",
                    {"s": table.schema, "t": table.name, "role": role},
                )
                known = {r[0] for r in await cur.fetchall()}
        except psycopg.Error:
            known = set()
        table.selectable[role] = known
        return known

    async def select_policies(self, table: Table, role: str) -> Policies | None:
        """The SELECT policies of `table` binding `role` (None: they could not be read, so nothing passes)."""
        key = (table.schema, table.name, role)
        now = asyncio.get_running_loop().time()
        cached = self._policies.get(key)
        if cached is not None and now - cached[0] < CACHE_TTL:
            return cached[1]
        policies: Policies | None = None
        try:
            async with self.connection() as conn:
                cur = await conn.execute(
                    "select p.permissive = 'PERMISSIVE', coalesce(p.qual, p.with_check, 'true') "
                    "from pg_catalog.pg_policies as p "
                    "where p.schemaname = %(s)s and p.tablename = %(t)s and p.cmd in ('SELECT', 'ALL') "
                    "and exists (select from pg_catalog.unnest(p.roles) as r (name) where case "
                    "when r.name = 'public' then true "
                    "else pg_catalog.pg_has_role(%(role)s, r.name, 'MEMBER') end) "
                    "order by p.policyname",
                    {"s": table.schema, "t": table.name, "role": role},
                )
                rows = await cur.fetchall()
            policies = Policies(
                tuple(qual for permissive, qual in rows if permissive),
                tuple(qual for permissive, qual in rows if not permissive),
            )
        except psycopg.Error as exc:
            log.info("reading the policies of %s.%s for %s failed: %s", table.schema, table.name, role, exc)
        self._policies[key] = (now, policies)
        return policies


async def _describe(conn: psycopg.AsyncConnection[Any], schema: str, name: str) -> Table:
    relation = "(pg_catalog.quote_ident(%(s)s) || '.' || pg_catalog.quote_ident(%(t)s))::pg_catalog.regclass"
    params = {"s": schema, "t": name}
    cur = await conn.execute(
        "select a.attname::text, t.typname::text, pg_catalog.format_type(a.atttypid, a.atttypmod) "
        "from pg_catalog.pg_attribute as a join pg_catalog.pg_type as t on t.oid = a.atttypid "
        f"where a.attrelid = {relation} and a.attnum > 0 and not a.attisdropped order by a.attnum",
        params,
    )
    columns = [(r[0], r[1], r[2]) for r in await cur.fetchall()]
    cur = await conn.execute(
        "select a.attname::text from pg_catalog.pg_index as i "
        "join pg_catalog.pg_attribute as a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
        f"where i.indrelid = {relation} and i.indisprimary "
        "order by pg_catalog.array_position(i.indkey::pg_catalog.int2[], a.attnum)",
        params,
    )
    pk = [r[0] for r in await cur.fetchall()]
    cur = await conn.execute(f"select relrowsecurity from pg_catalog.pg_class where oid = {relation}", params)
    row = await cur.fetchone()
    return Table(
        schema,
        name,
        [(c[0], c[1]) for c in columns],
        {c[0]: c[1] for c in columns},
        {c[0]: c[2] for c in columns},
        pk,
        bool(row and row[0]),
    )
