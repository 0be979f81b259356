"""The database side of /realtime/v1, always under the caller's own role and claims
(https://supabase.com/docs/guides/realtime/authorization).

Reading a private topic is decided by the app's SELECT policies on `realtime.messages` (a probe row inserted
and read back, then rolled back), sending by its INSERT policies (an insert in a savepoint, rolled back).
Replay reads past messages under the same policies. Every statement's values are bound parameters.

The pool is the API server's, shared with /rest/v1: Realtime holds at most `Limits.db_connections` of it at
once (a semaphore), so a flood of joins queues here and never takes the connections REST needs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from busymate.gateway.realtime.limits import Limits

log = logging.getLogger("busymate.realtime")

SET_CONTEXT = (
    "select set_config('role', %(role)s, true), set_config('realtime.topic', %(topic)s, true), "
    "set_config('request.jwt.claims', %(claims)s, true), "
    "set_config('request.jwt.claim.sub', %(sub)s, true), "
    "set_config('request.jwt.claim.role', %(role)s, true), "
    "set_config('request.headers', %(headers)s, true)"
)


def _context(claims: dict[str, object], topic: str, headers: dict[str, str]) -> dict[str, object]:
    return {
        "role": str(claims.get("role") or "anon"),
        "topic": topic,
        "claims": orjson.dumps(claims).decode(),
        "sub": str(claims.get("sub") or ""),
        "headers": orjson.dumps(headers).decode(),
    }


@dataclass(slots=True)
class Replayed:
    """A past broadcast read back for replay."""

    id: str
    event: str
    payload: str | None
    binary: bytes | None


class Access:
    """Policy checks, replay and persisted sends over the API server's `authenticator` pool."""

    def __init__(self, pool: AsyncConnectionPool, limits: Limits | None = None) -> None:
        self.pool = pool
        self.limits = limits or Limits()
        self._gate = asyncio.Semaphore(self.limits.db_connections)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection of the shared pool, once fewer than `db_connections` are held by Realtime."""
        async with self._gate, self.pool.connection() as conn:
            yield conn

    @asynccontextmanager
    async def as_caller(self, claims: dict[str, object]) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection in a transaction rolled back at the end, under the caller's role and claims (for a
        hook's checks: no topic, no headers)."""
        async with self.connection() as conn, conn.transaction(force_rollback=True):
            await conn.execute(SET_CONTEXT, _context(claims, "", {}))
            yield conn

    async def can_read(
        self, claims: dict[str, object], topic: str, headers: dict[str, str]
    ) -> tuple[bool, bool]:
        """(broadcast.read, presence.read) for a private topic."""
        probes = {"broadcast": str(uuid.uuid4()), "presence": str(uuid.uuid4())}
        try:
            async with self.connection() as conn, conn.transaction(force_rollback=True):
                await conn.execute("set local role service_role")
                for extension, probe in probes.items():
                    await conn.execute(
                        "insert into realtime.messages (id, topic, extension) "
                        "values (%(id)s::uuid, %(topic)s, %(extension)s)",
                        {"id": probe, "topic": topic, "extension": extension},
                    )
                await conn.execute(SET_CONTEXT, _context(claims, topic, headers))
                cur = await conn.execute(
                    "select id::text from realtime.messages where id = any(%(ids)s::uuid[])",
                    {"ids": list(probes.values())},
                )
                seen = {row[0] for row in await cur.fetchall()}
        except psycopg.Error as exc:
            log.info("read check on %s failed: %s", topic, exc)
            return False, False
        return probes["broadcast"] in seen, probes["presence"] in seen

    async def can_write(
        self,
        claims: dict[str, object],
        topic: str,
        headers: dict[str, str],
        extension: str,
        event: str | None,
    ) -> bool:
        """Whether the caller's INSERT policies let it send `event` (or track presence) on a private topic."""
        try:
            async with self.connection() as conn, conn.transaction(force_rollback=True):
                await conn.execute(SET_CONTEXT, _context(claims, topic, headers))
                await conn.execute(
                    "insert into realtime.messages (topic, extension, event, private) "
                    "values (%(topic)s, %(extension)s, %(event)s, true)",
                    {"topic": topic, "extension": extension, "event": event},
                )
        except psycopg.errors.InsufficientPrivilege:
            return False
        except psycopg.Error as exc:
            log.info("write check on %s failed: %s", topic, exc)
            return False
        return True

    async def replay(
        self, claims: dict[str, object], topic: str, headers: dict[str, str], since_ms: float, limit: int
    ) -> list[Replayed]:
        """Private broadcasts on `topic` since `since_ms` (epoch ms), oldest first, read as the caller."""
        async with self.connection() as conn, conn.transaction(force_rollback=True):
            await conn.execute(SET_CONTEXT, _context(claims, topic, headers))
            cur = await conn.execute(
                "select id::text, coalesce(event, ''), payload::text, binary_payload from realtime.messages "
                "where topic = %(topic)s and extension = 'broadcast' and private is true "
                "and inserted_at >= (to_timestamp(%(since)s / 1000.0) at time zone 'UTC') "
                "order by inserted_at, id limit %(limit)s",
                {"topic": topic, "since": since_ms, "limit": limit},
            )
            return [Replayed(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]

    async def store(
        self, claims: dict[str, object], headers: dict[str, str], messages: list[dict[str, object]]
    ) -> list[bool]:
        """Insert private broadcasts as the caller (its INSERT policies decide each); which ones were stored.

        A stored message reaches subscribers from the database, in commit order, and stays for replay.
        """
        stored = []
        async with self.connection() as conn, conn.transaction():
            for m in messages:
                topic = str(m["topic"])
                await conn.execute(SET_CONTEXT, _context(claims, topic, headers))
                try:
                    async with conn.transaction():
                        await conn.execute(
                            "insert into realtime.messages "
                            "(id, topic, extension, event, payload, binary_payload, private) "
                            "values (%(id)s::uuid, %(topic)s, 'broadcast', %(event)s, %(payload)s::jsonb, "
                            "%(binary)s, true)",
                            {
                                "id": m.get("id") or str(uuid.uuid4()),
                                "topic": topic,
                                "event": m["event"],
                                "payload": None if m.get("binary") is not None else m["payload_json"],
                                "binary": m.get("binary"),
                            },
                        )
                    stored.append(True)
                except psycopg.errors.InsufficientPrivilege:
                    stored.append(False)
        return stored
