"""Committed changes for /realtime/v1, read from a wal2json logical slot the way Supabase Realtime reads them
(https://supabase.com/docs/guides/realtime/postgres-changes): database broadcasts (rows inserted into
`realtime.messages`) and postgres_changes for the tables of the `supabase_realtime` publication.

One temporary slot per server, polled by one task, so everything reaches subscribers in commit order. A
partition's change is reported as its root table (the publication publishes through the root). Each poll's
postgres changes are matched to bindings (changes.py, subscriptions.py), checked against each subscriber's
policies (rls.py), then delivered in order with the poll's database broadcasts (the Hub's fan-out).

Database connections: the slot's and the catalog's (catalog.py) are Realtime's own; the checks take the shared
pool through `Access.connection`, which caps how many Realtime holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from busymate.gateway.realtime import changes
from busymate.gateway.realtime.catalog import APPLICATION_NAME, Catalog
from busymate.gateway.realtime.changes import Change
from busymate.gateway.realtime.rls import RlsChecks
from busymate.gateway.realtime.subscriptions import Subscriptions

if TYPE_CHECKING:
    from busymate.gateway.realtime.channel import Channel
    from busymate.gateway.realtime.hub import Hub

log = logging.getLogger("busymate.realtime")

BUSY_POLL = 0.005
IDLE_POLL = 0.025
BATCH = 1000
TABLES_TTL = 30.0


def _escape(name: str) -> str:
    return re.sub(r"([,.\\ *])", r"\\\1", name)


class Replication:
    """The slot poller; the postgres_changes subscriptions it decodes for."""

    def __init__(self, hub: Hub, conninfo: str, pool: AsyncConnectionPool) -> None:
        self.hub = hub
        self.conninfo = conninfo
        self.pool = pool  # the API server's; used only through hub.access.connection()
        self.catalog = Catalog(conninfo)
        self.tables = self.catalog.tables
        self.subscriptions = Subscriptions(self.catalog, hub.limits)
        self.rls = RlsChecks(self.catalog, hub.access)
        self.roots: dict[tuple[str, str], tuple[str, str]] = {}
        self._add_tables = "realtime.*"
        self._tables_loaded = 0.0
        self.ready = asyncio.Event()

    async def subscribe(self, channel: Channel, bindings: list[dict[str, object]]) -> None:
        """Bind a channel's postgres_changes (subscriptions.py)."""
        await self.subscriptions.subscribe(channel, bindings)

    async def refresh(self, channel: Channel) -> None:
        """A channel's claims changed (access_token): its bindings use them from the next change on."""
        await self.subscriptions.refresh(channel)

    def unsubscribe(self, channel: Channel) -> None:
        """Forget a channel's bindings."""
        self.subscriptions.unsubscribe(channel)

    async def run(self) -> None:
        """Poll the slot forever; reconnect (with a new slot) when the connection is lost."""
        try:
            while True:
                try:
                    await self._run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("replication lost its connection; retrying in 1 s")
                    self.ready.clear()
                    await asyncio.sleep(1)
        finally:
            await self.catalog.close()

    async def _run_once(self) -> None:
        slot = f"busymate_realtime_{os.getpid()}"
        async with await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, application_name=APPLICATION_NAME
        ) as conn:
            await conn.execute("set search_path = ''")
            cur = await conn.execute(
                "select count(*) from pg_catalog.pg_replication_slots where slot_name = %(slot)s",
                {"slot": slot},
            )
            row = await cur.fetchone()
            if row and row[0]:
                await conn.execute("select pg_catalog.pg_drop_replication_slot(%(slot)s)", {"slot": slot})
            await conn.execute(
                "select pg_catalog.pg_create_logical_replication_slot(%(slot)s, 'wal2json', true)",
                {"slot": slot},
            )
            self.ready.set()
            log.info("realtime replication slot %s ready", slot)
            loop = asyncio.get_running_loop()
            while True:
                if self.subscriptions.dirty or loop.time() - self._tables_loaded > TABLES_TTL:
                    await self._load_tables(conn)
                cur = await conn.execute(
                    "select data from pg_catalog.pg_logical_slot_get_changes(%(slot)s, null, %(n)s, "
                    "'format-version', '2', 'include-types', 'false', 'include-type-oids', 'false', "
                    "'include-timestamp', 'true', 'include-pk', 'true', 'include-transaction', 'false', "
                    "'add-tables', %(tables)s)",
                    {"slot": slot, "n": BATCH, "tables": self._add_tables},
                )
                rows = await cur.fetchall()
                if rows:
                    await self._dispatch([r[0] for r in rows])
                    await asyncio.sleep(BUSY_POLL if len(rows) < BATCH else 0)
                else:
                    await asyncio.sleep(IDLE_POLL)

    async def _load_tables(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Which tables to decode: realtime.messages and every subscribed table with its partitions."""
        subs = self.subscriptions
        subs.dirty = False
        waiters, subs.reload_waiters = subs.reload_waiters, []
        self._tables_loaded = asyncio.get_running_loop().time()
        names = ["realtime.*"]
        roots: dict[tuple[str, str], tuple[str, str]] = {}
        for schema, table in list(subs.bindings):
            cur = await conn.execute(
                "select n.nspname::text, c.relname::text from pg_catalog.pg_partition_tree("
                "(quote_ident(%(s)s) || '.' || quote_ident(%(t)s))::regclass) as p "
                "join pg_catalog.pg_class as c on c.oid = p.relid "
                "join pg_catalog.pg_namespace as n on n.oid = c.relnamespace",
                {"s": schema, "t": table},
            )
            parts = [(r[0], r[1]) for r in await cur.fetchall()] or [(schema, table)]
            for part in parts:
                roots[part] = (schema, table)
                names.append(f"{_escape(part[0])}.{_escape(part[1])}")
        self.roots = roots
        self._add_tables = ",".join(names)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _dispatch(self, lines: list[str]) -> None:
        """Deliver one poll's changes in commit order, after the RLS checks they need."""
        bindings = self.subscriptions.bindings
        events: list[Change | dict[str, Any]] = []  # a postgres change, or a realtime.messages insert
        for line in lines:
            raw = orjson.loads(line)
            schema, table = raw.get("schema"), raw.get("table")
            if schema == "realtime":
                if isinstance(table, str) and table.startswith("messages") and raw.get("action") == "I":
                    events.append(raw)
                continue
            root = self.roots.get((schema, table))
            if root is not None and root in bindings:
                described = self.tables.get(root)
                change = None if described is None else changes.match(described, bindings.get(root, ()), raw)
                if change is not None:
                    events.append(change)
        found = [e for e in events if isinstance(e, Change)]
        if found:
            await self.rls.check(found)
        for event in events:
            if isinstance(event, Change):
                changes.deliver(event)
            else:
                self._deliver_message(event)

    def _deliver_message(self, raw: dict[str, Any]) -> None:
        """A committed realtime.messages row: a broadcast to the subscribers of its topic."""
        values = {c["name"]: c.get("value") for c in raw.get("columns", [])}
        if values.get("extension") != "broadcast":
            return
        payload, binary = values.get("payload"), values.get("binary_payload")
        self.hub.deliver_database(
            str(values.get("topic")),
            bool(values.get("private")),
            str(values.get("id")),
            str(values.get("event") or ""),
            payload if isinstance(payload, str) else None,
            bytes.fromhex(binary[2:]) if isinstance(binary, str) and binary.startswith("\\x") else None,
        )
