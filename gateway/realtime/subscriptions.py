"""postgres_changes subscriptions (https://supabase.com/docs/guides/realtime/postgres-changes): a join's
bindings checked (schema or table given, published, filters that parse and name columns the subscriber's role
may select) and kept per published table, or refused with Realtime's messages while the channel stays joined.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
import psycopg

from busymate.gateway.realtime import filters as pgfilters
from busymate.gateway.realtime.catalog import Catalog
from busymate.gateway.realtime.limits import TOO_MANY_BINDINGS, Limits

if TYPE_CHECKING:
    from busymate.gateway.realtime.channel import Channel

Entity = tuple[str, str]  # (schema, table)


@dataclass(eq=False)
class Binding:
    """One postgres_changes binding of one channel."""

    channel: Channel
    id: int
    event: str
    schema: str
    table: str
    filters: list[pgfilters.Filter]
    entities: set[Entity]
    role: str = "anon"
    claims_json: str = "{}"  # the channel's claims, encoded once (they group the RLS checks)

    def use_claims(self) -> None:
        """Take the channel's current claims (at subscribe and after an access_token)."""
        claims = self.channel.claims
        self.role = str(claims.get("role") or "anon")
        self.claims_json = orjson.dumps(claims).decode()


class Subscriptions:
    """Every channel's bindings, by the published table they watch."""

    def __init__(self, catalog: Catalog, limits: Limits) -> None:
        self.catalog = catalog
        self.tables = catalog.tables
        self.limits = limits
        self.bindings: dict[Entity, list[Binding]] = defaultdict(list)
        self.dirty = True  # the tables to decode changed: the poller reloads them
        self.reload_waiters: list[asyncio.Future[None]] = []  # set when the poller has reloaded them

    async def subscribe(self, channel: Channel, bindings: list[dict[str, object]]) -> None:
        """Bind a channel's postgres_changes; tell it Subscribed, or why not (the channel stays joined)."""
        role = str(channel.claims.get("role") or "anon")
        cap = self.limits.max_bindings_per_channel
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
            self.dirty = True
        if channel.bindings:
            # Say Subscribed only once the slot decodes the new tables, so no later change is missed.
            reloaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.reload_waiters.append(reloaded)
            self.dirty = True
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
        self.dirty = True
