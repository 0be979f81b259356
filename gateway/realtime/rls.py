"""Row-level security per postgres_changes subscriber: for INSERT and UPDATE on a table with RLS, whether
each subscriber (its role and claims) can read the row now; for a DELETE whose binding filtered on a non-key
column, whether its policies pass on the old row (deletes.py). One query per (table, claims) per poll; a
failing check drops only that subscriber's targets.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import orjson
from psycopg import sql

from busymate.gateway.realtime import deletes
from busymate.gateway.realtime.access import Access
from busymate.gateway.realtime.catalog import Catalog, Table
from busymate.gateway.realtime.changes import Change
from busymate.gateway.realtime.values import key_text

log = logging.getLogger("busymate.realtime")


def _key(change: Change) -> str:
    return orjson.dumps([key_text(k) for k in change.keys]).decode()


class RlsChecks:
    """Drops the targets of a poll's changes whose own policies hide the row."""

    def __init__(self, catalog: Catalog, access: Access) -> None:
        self.catalog = catalog
        self.access = access  # its connection() caps how many of the shared pool's connections Realtime holds

    async def check(self, changes: list[Change]) -> None:
        """Drop the targets whose own policies hide the row: one query per (table, claims)."""
        await self._check_deleted([c for c in changes if c.unverified])
        groups: dict[tuple[str, str, str, str], list[Change]] = defaultdict(list)
        for change in changes:
            if change.action == "DELETE" or not change.table.rls or not change.table.pk:
                continue
            for _channel, role, claims in change.targets:
                if role == "service_role":
                    continue
                groups[(change.table.schema, change.table.name, role, claims)].append(change)
        for (schema, name, role, claims), group in groups.items():
            table = group[0].table
            keys = [change.keys for change in group]
            visible: set[str] = set()
            try:
                visible = await self._visible(table, role, claims, keys)
            except Exception as exc:
                log.warning("RLS check on %s.%s for a %s subscriber failed: %s", schema, name, role, exc)
            for change in group:
                if _key(change) not in visible:
                    for target in [t for t in change.targets if t[1] == role and t[2] == claims]:
                        del change.targets[target]

    async def _visible(self, table: Table, role: str, claims: str, keys: list[list[object]]) -> set[str]:
        pk = [sql.Identifier(col) for col in table.pk]
        record_def = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(col), sql.SQL(table.sql_types[col])) for col in table.pk
        )
        query = sql.SQL(
            "select jsonb_build_array({texts})::text from {table} as t "
            "where ({cols}) in (select {kcols} from jsonb_to_recordset(%(keys)s::jsonb) as k ({record_def}))"
        ).format(
            texts=sql.SQL(", ").join(sql.SQL("t.{}::text").format(c) for c in pk),
            table=sql.Identifier(table.schema, table.name),
            cols=sql.SQL(", ").join(sql.SQL("t.{}").format(c) for c in pk),
            kcols=sql.SQL(", ").join(sql.SQL("k.{}").format(c) for c in pk),
            record_def=record_def,
        )
        rows_json = orjson.dumps([dict(zip(table.pk, k, strict=True)) for k in keys]).decode()
        async with self.access.connection() as conn, conn.transaction(force_rollback=True):
            await conn.execute(
                "select set_config('role', %(role)s, true), "
                "set_config('request.jwt.claims', %(claims)s, true)",
                {"role": role, "claims": claims},
            )
            cur = await conn.execute(query, {"keys": rows_json})
            return {orjson.dumps(orjson.loads(r[0])).decode() for r in await cur.fetchall()}

    async def _check_deleted(self, changes: list[Change]) -> None:
        """Keep a DELETE binding that filtered on a non-key column only if its subscriber could read the old
        row: one query per (table, claims), under the subscriber's role and claims."""
        groups: dict[tuple[str, str, str, str], list[Change]] = defaultdict(list)
        for change in changes:
            for _channel, role, claims in change.unverified:
                groups[(change.table.schema, change.table.name, role, claims)].append(change)
        for (schema, name, role, claims), group in groups.items():
            table = group[0].table
            readable: set[str] = set()
            policies = await self.catalog.select_policies(table, role)
            try:
                if policies is not None:
                    async with self.access.connection() as conn, conn.transaction(force_rollback=True):
                        rows = [change.old_text for change in group]
                        readable = await deletes.readable(conn, table, policies, role, claims, rows)
            except Exception as exc:
                log.warning(
                    "RLS check of a DELETE on %s.%s for a %s subscriber failed: %s", schema, name, role, exc
                )
            for change in group:
                if _key(change) in readable:
                    continue
                for target in [t for t in change.unverified if t[1] == role and t[2] == claims]:
                    refused = change.unverified.pop(target)
                    kept = [i for i in change.targets.get(target, []) if i not in refused]
                    if kept:
                        change.targets[target] = kept
                    else:
                        change.targets.pop(target, None)
