"""Committed changes for /realtime/v1, read from a wal2json logical slot the way Supabase Realtime reads them
(https://supabase.com/docs/guides/realtime/postgres-changes): database broadcasts (rows inserted into
`realtime.messages`) and postgres_changes for the tables of the `supabase_realtime` publication.

One temporary slot per server, polled by one task, so everything reaches subscribers in commit order. A
partition's change is reported as its root table (the publication publishes through the root). For each
postgres_changes change: the binding's event and filters, the columns the subscriber's role may select, and
for INSERT/UPDATE on a table with row-level security the subscriber's own policies, checked in one query per
(table, claims) per poll under the subscriber's role and claims. A failing check affects only that subscriber.
A DELETE on such a table goes out as its key; a filter on another column is matched against the old row only
for a subscriber whose policies passed on it (deletes.py), so a filter never tells what a row held.

Database connections: the slot's and the catalog's (catalog.py) are Realtime's own; the checks take the shared
pool through `Access.connection`, which caps how many Realtime holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from busymate.gateway.realtime import deletes
from busymate.gateway.realtime import filters as pgfilters
from busymate.gateway.realtime.catalog import APPLICATION_NAME, Catalog, Table
from busymate.gateway.realtime.limits import TOO_MANY_BINDINGS
from busymate.gateway.realtime.protocol import Frame

if TYPE_CHECKING:
    from busymate.gateway.realtime.hub import Channel, Hub

log = logging.getLogger("busymate.realtime")

BUSY_POLL = 0.005
IDLE_POLL = 0.025
BATCH = 1000
TABLES_TTL = 30.0
JSON_TYPES = {"json", "jsonb"}
ACTIONS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}


@dataclass(eq=False)
class Binding:
    """One postgres_changes binding of one channel."""

    channel: Channel
    id: int
    event: str
    schema: str
    table: str
    filters: list[pgfilters.Filter]
    entities: set[tuple[str, str]]
    role: str = "anon"
    claims_json: str = "{}"  # the channel's claims, encoded once (they group the RLS checks)

    def use_claims(self) -> None:
        """Take the channel's current claims (at subscribe and after an access_token)."""
        claims = self.channel.claims
        self.role = str(claims.get("role") or "anon")
        self.claims_json = orjson.dumps(claims).decode()


def _value(raw: object, typname: str) -> object:
    """A wal2json value as `to_jsonb(value)` would give it."""
    if raw is None or not isinstance(raw, str):
        return raw
    if typname in JSON_TYPES:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    if typname == "timestamptz":
        text = raw.replace(" ", "T", 1)
        return text + ":00" if re.search(r"[+-]\d\d$", text) else text
    if typname == "timestamp":
        return raw.replace(" ", "T", 1)
    if typname.startswith("_"):
        return _array(raw, typname[1:])
    return raw


def _array(text: str, element: str) -> object:
    """A one-dimensional array literal as a JSON list (anything fancier stays text)."""
    if not (text.startswith("{") and text.endswith("}")):
        return text
    body = text[1:-1]
    if not body:
        return []
    items: list[object] = []
    buf: list[str] = []
    quoted = False
    was_quoted = False
    i = 0
    while i < len(body):
        ch = body[i]
        if quoted:
            if ch == "\\" and i + 1 < len(body):
                buf.append(body[i + 1])
                i += 1
            elif ch == '"':
                quoted = False
            else:
                buf.append(ch)
        elif ch == '"':
            quoted = was_quoted = True
        elif ch == "{":
            return text
        elif ch == ",":
            items.append(_element("".join(buf), was_quoted, element))
            buf, was_quoted = [], False
        else:
            buf.append(ch)
        i += 1
    items.append(_element("".join(buf), was_quoted, element))
    return items


def _element(text: str, quoted: bool, element: str) -> object:
    if not quoted and text == "NULL":
        return None
    if element in pgfilters.NUMERIC:
        with contextlib.suppress(ValueError):
            return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    if element == "bool":
        return text == "t"
    if element in JSON_TYPES:
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(text)
    return _value(text, element)


def _commit_time(raw: object) -> str:
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        moment = datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _escape(name: str) -> str:
    return re.sub(r"([,.\\ *])", r"\\\1", name)


@dataclass
class Change:
    """One decoded postgres change, before fan-out."""

    table: Table
    action: str
    record: dict[str, object]
    old: dict[str, object]
    commit: str
    keys: list[object]  # the primary key as wal2json spelled it (Postgres's text output)
    # (channel, role, claims json) -> binding ids that passed event and filters
    targets: dict[tuple[Channel, str, str], list[int]]
    # of those, the DELETE bindings whose filter read a non-key column: kept only if the old row was readable
    unverified: dict[tuple[Channel, str, str], list[int]] = field(default_factory=dict)
    old_text: dict[str, str | None] = field(default_factory=dict)  # the old row as Postgres's text output


class Replication:
    """The slot poller and the postgres_changes subscriptions."""

    def __init__(self, hub: Hub, conninfo: str, pool: AsyncConnectionPool) -> None:
        self.hub = hub
        self.conninfo = conninfo
        self.pool = pool  # the API server's; used only through hub.access.connection()
        self.catalog = Catalog(conninfo)
        self.tables = self.catalog.tables
        self.bindings: dict[tuple[str, str], list[Binding]] = defaultdict(list)
        self.roots: dict[tuple[str, str], tuple[str, str]] = {}
        self._add_tables = "realtime.*"
        self._tables_loaded = 0.0
        self._dirty = True
        self.ready = asyncio.Event()
        self._reload_waiters: list[asyncio.Future[None]] = []

    # -- subscriptions -----------------------------------------------------------------------------------

    async def subscribe(self, channel: Channel, bindings: list[dict[str, object]]) -> None:
        """Bind a channel's postgres_changes; tell it Subscribed, or why not (the channel stays joined)."""
        role = str(channel.claims.get("role") or "anon")
        cap = self.hub.limits.max_bindings_per_channel
        for position, spec in enumerate(bindings):
            if position >= cap:
                channel.system(
                    "postgres_changes", "error", f"{TOO_MANY_BINDINGS} (at most {cap} per channel)"
                )
                break
            event = str(spec.get("event") or "*").upper()
            event = event if event in ("INSERT", "UPDATE", "DELETE") else "*"
            schema = spec.get("schema")
            table = spec.get("table")
            filter_text = spec.get("filter")
            if not schema and not table:
                channel.system(
                    "postgres_changes",
                    "error",
                    "No subscription params provided. Please provide at least a `schema` or `table` to "
                    "subscribe to.",
                )
                continue
            schema_name = str(schema or "public")
            table_name = str(table or "*")
            try:
                parsed = pgfilters.parse(filter_text if isinstance(filter_text, str) else None)
            except pgfilters.FilterError as exc:
                channel.system("postgres_changes", "error", str(exc))
                continue
            try:
                entities = await self.catalog.published(schema_name, table_name)
            except psycopg.Error as exc:
                channel.system("postgres_changes", "error", f"Unable to subscribe to changes: {exc}")
                continue
            described = ", ".join(f"{f.column}={'not.' if f.negate else ''}{f.op}" for f in parsed)
            if not entities:
                channel.system(
                    "postgres_changes",
                    "error",
                    "Unable to subscribe to changes with given parameters. Please check Realtime is enabled "
                    f"for the given connect parameters: [event: {event}, schema: {schema_name}, "
                    f"table: {table_name}, filters: [{described}], select: nil]",
                )
                continue
            problem = None
            for entity in entities:
                visible = await self.catalog.selectable(self.tables[entity], role)
                for f in parsed:
                    if f.column not in self.tables[entity].types:
                        problem = f"column {f.column!r} does not exist on {entity[0]}.{entity[1]}"
                    elif f.column not in visible:
                        problem = f"permission denied for column {f.column!r} of {entity[0]}.{entity[1]}"
            if problem is not None:
                channel.system(
                    "postgres_changes",
                    "error",
                    f"Unable to subscribe to changes with given parameters. An exception happened: {problem}",
                )
                continue
            spec_id = spec.get("id")
            binding = Binding(
                channel,
                int(spec_id) if isinstance(spec_id, int) else 0,
                event,
                schema_name,
                table_name,
                parsed,
                set(entities),
            )
            binding.use_claims()
            channel.bindings.append(binding)
            for entity in entities:
                self.bindings[entity].append(binding)
            self._dirty = True
        if channel.bindings:
            # Say Subscribed only once the slot decodes the new tables, so no later change is missed.
            reloaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._reload_waiters.append(reloaded)
            self._dirty = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reloaded, 10)
            channel.system("postgres_changes", "ok", "Subscribed to PostgreSQL")

    async def refresh(self, channel: Channel) -> None:
        """A channel's claims changed (access_token): its bindings use them from the next change on."""
        for binding in channel.bindings:
            binding.use_claims()
            for entity in binding.entities:
                await self.catalog.selectable(self.tables[entity], binding.role)

    def unsubscribe(self, channel: Channel) -> None:
        """Forget a channel's bindings."""
        for binding in channel.bindings:
            for entity in binding.entities:
                remaining = [b for b in self.bindings.get(entity, []) if b is not binding]
                if remaining:
                    self.bindings[entity] = remaining
                else:
                    self.bindings.pop(entity, None)
        channel.bindings = []
        self._dirty = True

    # -- polling -----------------------------------------------------------------------------------------

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
                if self._dirty or loop.time() - self._tables_loaded > TABLES_TTL:
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
        self._dirty = False
        waiters, self._reload_waiters = self._reload_waiters, []
        self._tables_loaded = asyncio.get_running_loop().time()
        names = ["realtime.*"]
        roots: dict[tuple[str, str], tuple[str, str]] = {}
        for schema, table in list(self.bindings):
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
        events: list[Change | dict[str, Any]] = []  # a postgres change, or a realtime.messages insert
        for line in lines:
            raw = orjson.loads(line)
            schema, table = raw.get("schema"), raw.get("table")
            if schema == "realtime":
                if isinstance(table, str) and table.startswith("messages") and raw.get("action") == "I":
                    events.append(raw)
                continue
            root = self.roots.get((schema, table))
            if root is not None and root in self.bindings:
                change = self._change(root, raw)
                if change is not None:
                    events.append(change)
        changes = [e for e in events if isinstance(e, Change)]
        if changes:
            await self._check_rls(changes)
        for event in events:
            if isinstance(event, Change):
                self._deliver(event)
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

    def _change(self, root: tuple[str, str], raw: dict[str, Any]) -> Change | None:
        table = self.tables.get(root)
        if table is None:
            return None
        action = ACTIONS.get(str(raw.get("action")))
        if action is None:
            return None
        record = {
            c["name"]: _value(c.get("value"), table.types.get(c["name"], "")) for c in raw.get("columns", [])
        }
        old = {
            c["name"]: _value(c.get("value"), table.types.get(c["name"], "")) for c in raw.get("identity", [])
        }
        raw_values = {
            c["name"]: c.get("value") for c in raw.get("columns" if action != "DELETE" else "identity", [])
        }
        keys = [raw_values.get(col) for col in table.pk]
        targets: dict[tuple[Channel, str, str], list[int]] = {}
        unverified: dict[tuple[Channel, str, str], list[int]] = {}
        row = old if action == "DELETE" else record
        # A DELETE with RLS goes out as its key: a filter on the key sees what the subscriber gets anyway; one
        # on another column sees the old row only if its policies pass on it (see _check_deleted).
        keyed = {k: v for k, v in old.items() if k in table.pk} if action == "DELETE" and table.rls else None
        for binding in self.bindings.get(root, ()):
            if binding.event not in ("*", action):
                continue
            key = (binding.channel, binding.role, binding.claims_json)
            if keyed is not None and all(f.column in keyed for f in binding.filters):
                if not pgfilters.matches(binding.filters, keyed, table.types):
                    continue
            elif not pgfilters.matches(binding.filters, row, table.types):
                continue
            elif keyed is not None and binding.role != "service_role":
                unverified.setdefault(key, []).append(binding.id)
            targets.setdefault(key, []).append(binding.id)
        if not targets:
            return None
        change = Change(table, action, record, old, _commit_time(raw.get("timestamp")), keys, targets)
        if unverified:
            change.unverified = unverified
            change.old_text = {name: _text(value) for name, value in raw_values.items()}
        return change

    async def _check_rls(self, changes: list[Change]) -> None:
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
                key = orjson.dumps([_text(k) for k in change.keys]).decode()
                if key not in visible:
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
        async with self.hub.access.connection() as conn, conn.transaction(force_rollback=True):
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
                    async with self.hub.access.connection() as conn, conn.transaction(force_rollback=True):
                        rows = [change.old_text for change in group]
                        readable = await deletes.readable(conn, table, policies, role, claims, rows)
            except Exception as exc:
                log.warning(
                    "RLS check of a DELETE on %s.%s for a %s subscriber failed: %s", schema, name, role, exc
                )
            for change in group:
                if orjson.dumps([_text(k) for k in change.keys]).decode() in readable:
                    continue
                for target in [t for t in change.unverified if t[1] == role and t[2] == claims]:
                    refused = change.unverified.pop(target)
                    kept = [i for i in change.targets.get(target, []) if i not in refused]
                    if kept:
                        change.targets[target] = kept
                    else:
                        change.targets.pop(target, None)

    def _deliver(self, change: Change) -> None:
        table = change.table
        for (channel, role, _claims), ids in change.targets.items():
            if channel.closed:
                continue
            visible = table.selectable.get(role)
            if visible is None:
                visible = {name for name, _ in table.columns}
            data: dict[str, object] = {
                "schema": table.schema,
                "table": table.name,
                "commit_timestamp": change.commit,
                "type": change.action,
                "columns": [{"name": n, "type": t} for n, t in table.columns if n in visible],
                "errors": None,
            }
            if not table.pk and change.action != "DELETE":
                data["errors"] = ["Error 400: Bad Request, no primary key"]
            elif change.action in ("INSERT", "UPDATE"):
                data["record"] = {k: v for k, v in change.record.items() if k in visible}
            if change.action in ("UPDATE", "DELETE"):
                old = change.old
                if change.action == "DELETE" and table.rls:
                    old = {k: v for k, v in old.items() if k in table.pk}
                data["old_record"] = {k: v for k, v in old.items() if k in visible}
            channel.socket.send_frame(
                Frame(channel.topic, "postgres_changes", {"ids": ids, "data": data}, None, channel.join_ref)
            )


def _text(value: object) -> str | None:
    """A key value as Postgres's text output would spell it (for matching the RLS check's answer)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
