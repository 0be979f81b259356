"""Whether the API server's database answers (`Availability`), and how a lost connection is told from a
refused statement."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool

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
