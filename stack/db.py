"""Connections to the project's cluster: psycopg 3, parameters bound, identifiers quoted."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

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
