"""Connections to the project's cluster: psycopg 3, parameters bound, identifiers quoted; and whether the API
server's database answers (`Availability`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from busymate.errors import BusymateError
from busymate.settings import Settings
from busymate.stack.postgres import BOOTSTRAP_USER


@contextmanager
def connect(
    settings: Settings, *, user: str = BOOTSTRAP_USER, database: str | None = None, autocommit: bool = True
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection to `database` as `user`; a refused connection becomes a one-line error.

    Autocommit by default, so `conn.transaction()` is always a real BEGIN/COMMIT, never a savepoint inside
    an implicit transaction that a later failure would throw away.
    """
    try:
        conn = psycopg.connect(
            host=settings.db_host,
            port=settings.db_port,
            user=user,
            password=settings.db_password,
            dbname=database or settings.db_name,
            autocommit=autocommit,
            connect_timeout=10,
            application_name="busymate",
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection refused"
        raise BusymateError(
            f"cannot reach Postgres at {settings.db_host}:{settings.db_port} as {user}: {first} "
            "(is it running? try `busymate db start`)"
        ) from exc
    try:
        yield conn
    finally:
        conn.close()


def database_exists(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    """True when a database called `name` exists in the cluster."""
    row = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
    return row is not None


def drop_database(conn: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    """Drop `name` if it exists, disconnecting anyone still on it (needs an autocommit connection).

    FORCE does not end a logical replication slot's reader (the API server's /realtime/v1), so those are ended
    first; their slots are temporary and go with them, and the server reconnects to the new database.
    """
    for _ in range(50):
        slots = conn.execute(
            "select pg_catalog.pg_terminate_backend(active_pid), temporary, slot_name::text "
            "from pg_catalog.pg_replication_slots where database = %(name)s",
            {"name": name},
        ).fetchall()
        if not slots:
            break
        for _terminated, temporary, slot in slots:
            if not temporary:
                with contextlib.suppress(psycopg.errors.ObjectInUse):
                    conn.execute("select pg_catalog.pg_drop_replication_slot(%(slot)s)", {"slot": slot})
        time.sleep(0.1)
    conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def create_database(
    conn: psycopg.Connection[tuple[object, ...]], name: str, *, owner: str, template: str = "template0"
) -> None:
    """Create `name` owned by `owner` from `template` (needs an autocommit connection)."""
    conn.execute(
        sql.SQL("create database {} owner {} template {} encoding 'UTF8'").format(
            sql.Identifier(name), sql.Identifier(owner), sql.Identifier(template)
        )
    )


log = logging.getLogger("busymate.api")

PROBE_INTERVAL = 0.5  # seconds between attempts to reach a database that went away
RETRY_AFTER = "1"  # what 503 answers tell clients, in seconds


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` says the database went away (rather than refusing one statement).

    psycopg raises OperationalError without a SQLSTATE for a closed or broken connection and a refused
    connect; 08xxx is a connection exception, 57P01-57P03 a server shutting down or still starting."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    code = exc.sqlstate
    return code is None or code.startswith("08") or code in ("57P01", "57P02", "57P03")


def first_line(exc: BaseException) -> str:
    """An error's first line, for a log line or a `details` field."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Availability:
    """Whether the API server's database answers.

    A lost connection marks it down; while it is down, requests are answered 503 at once instead of waiting on
    a pool that cannot connect. One task then tries to connect every PROBE_INTERVAL; once Postgres answers it
    has the pools drop the connections that died with the old server, and marks the database up again."""

    def __init__(self, conninfo: str, pools: Sequence[AsyncConnectionPool]) -> None:
        self._conninfo = conninfo
        self._pools = pools
        self.down = False
        self.reason = ""
        self._probe: asyncio.Task[None] | None = None

    def lost(self, exc: BaseException) -> None:
        """Note that the database went away (`exc` says how) and start probing for its return."""
        if self.down:
            return
        self.down = True
        self.reason = first_line(exc)
        log.warning("the database is unreachable (%s): answering 503 until it is back", self.reason)
        self._probe = asyncio.get_running_loop().create_task(self._wait_for_return())

    def suspect(self) -> None:
        """Check in the background whether the database answers (a pool timed out); mark it down if not."""
        if self.down or (self._probe is not None and not self._probe.done()):
            return
        self._probe = asyncio.get_running_loop().create_task(self._check_once())

    async def _answers(self) -> BaseException | None:
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, connect_timeout=2)
            async with conn:
                await conn.execute("select 1")
        except psycopg.Error as exc:
            return exc
        return None

    async def _check_once(self) -> None:
        failure = await self._answers()
        if failure is not None and connection_lost(failure):
            self.lost(failure)

    async def _wait_for_return(self) -> None:
        while await self._answers() is not None:
            await asyncio.sleep(PROBE_INTERVAL)
        for pool in self._pools:
            await pool.check()
        self.down = False
        log.warning("the database answers again")

    async def close(self) -> None:
        """Stop probing."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
