"""Shared pieces for the /realtime/v1 end-to-end tests: clients, inboxes awaiting callbacks, SQL, raw frames.

The PyPI client calls user callbacks from its listening task; an `Inbox` collects what they get so a test can
await "the next n items" with a deadline, or wait a quiet moment and check that nothing more came.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.types.json import Jsonb
from realtime import AsyncRealtimeChannel, AsyncRealtimeClient, RealtimeSubscribeStates
from realtime.types import (
    RealtimeChannelBroadcastConfig,
    RealtimeChannelOptions,
    RealtimeChannelPresenceConfig,
    ReplayOption,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from busymate import tokens
from busymate.settings import Settings
from tests.world import add_user

WAIT = 5.0  # seconds for a message that must come
QUIET = 1.0  # seconds of silence that stand for "never comes"
JOIN_TIMEOUT = (
    8  # the client's push timeout: the contract lets a server delay join errors (the real one: 5 s)
)
TEST_TIMEOUT = 45.0

State = tuple[str, str | None]  # (RealtimeSubscribeStates value, str(error) or None)


def run(scenario: Coroutine[Any, Any, None], timeout: float = TEST_TIMEOUT) -> None:
    """Run one test's scenario on a fresh event loop, with an overall deadline."""
    asyncio.run(asyncio.wait_for(scenario, timeout))


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def now_ms() -> int:
    """Milliseconds since the epoch, as replay's `since` takes them."""
    return int(time.time() * 1000)


class Inbox[T]:
    """Items handed to a callback, in arrival order, with awaitable arrival."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: list[T] = []
        self._changed = asyncio.Event()

    def put(self, item: T) -> None:
        """Record one item (use as the callback, or from inside one)."""
        self.items.append(item)
        self._changed.set()

    async def wait(self, count: int = 1, timeout: float = WAIT) -> list[T]:
        """The first `count` items, waiting up to `timeout` seconds for them to arrive."""
        await self._until(lambda: len(self.items) >= count, f"{count} item(s)", timeout)
        return self.items[:count]

    async def first(self, predicate: Callable[[T], bool], what: str, timeout: float = WAIT) -> T:
        """The first item matching `predicate`."""
        await self._until(lambda: any(predicate(i) for i in self.items), what, timeout)
        return next(i for i in self.items if predicate(i))

    async def settle(self, seconds: float = QUIET) -> list[T]:
        """Everything received after a quiet moment (so whatever was going to arrive has)."""
        await asyncio.sleep(seconds)
        return list(self.items)

    async def _until(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no {what} within {timeout} s; got {self.items!r}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll `condition` until it holds (for state the client keeps, such as presence)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


def anon_key(settings: Settings) -> str:
    """The project's legacy anon key (what supabase-py passes as `apikey`)."""
    return tokens.anon_key(settings.jwt_secret)


def realtime_url(settings: Settings) -> str:
    """The URL handed to AsyncRealtimeClient, as supabase-py builds it (the client appends /websocket)."""
    return f"{settings.api_url}/realtime/v1"


@asynccontextmanager
async def realtime_client(
    settings: Settings, token: str | None = None, *, apikey: str | None = None, connect: bool = True
) -> AsyncIterator[AsyncRealtimeClient]:
    """A PyPI realtime client: `apikey` (default: the anon key) in the URL, `token` as the access_token.

    That is what supabase-py does for a signed-in user: connect with the project key, then `set_auth(jwt)`.
    """
    client = AsyncRealtimeClient(
        realtime_url(settings), apikey or anon_key(settings), auto_reconnect=False, timeout=JOIN_TIMEOUT
    )
    if token is not None:
        await client.set_auth(token)
    if connect:
        await client.connect()
    try:
        yield client
    finally:
        await client.close()


def options(
    *,
    private: bool = False,
    self_: bool = False,
    ack: bool = False,
    presence_key: str | None = None,
    replay: ReplayOption | None = None,
) -> RealtimeChannelOptions:
    """Channel options in the client's own shape."""
    broadcast: RealtimeChannelBroadcastConfig = {"self": self_, "ack": ack}
    if replay is not None:
        broadcast["replay"] = replay
    presence: RealtimeChannelPresenceConfig | None = (
        {"key": presence_key, "enabled": True} if presence_key is not None else None
    )
    return {"config": {"broadcast": broadcast, "presence": presence, "private": private}}


def state_recorder(inbox: Inbox[State]) -> Callable[[RealtimeSubscribeStates, Exception | None], None]:
    """A subscribe callback that records (state, error text)."""

    def record(state: RealtimeSubscribeStates, error: Exception | None) -> None:
        inbox.put((state.value, None if error is None else str(error)))

    return record


async def join(channel: AsyncRealtimeChannel) -> Inbox[State]:
    """Subscribe; the inbox returned holds every subscribe-state change (the first one is already there)."""
    states: Inbox[State] = Inbox(f"states of {channel.topic}")
    await channel.subscribe(state_recorder(states))
    await states.wait(1, JOIN_TIMEOUT + 2)
    return states


async def joined(channel: AsyncRealtimeChannel) -> Inbox[State]:
    """Subscribe and insist on SUBSCRIBED."""
    states = await join(channel)
    assert states.items[0] == ("SUBSCRIBED", None), states.items
    return states


async def refused(channel: AsyncRealtimeChannel) -> dict[str, Any]:
    """Subscribe, insist on CHANNEL_ERROR, return the join reply's `response` (the client JSON-encodes it)."""
    states = await join(channel)
    state, error = states.items[0]
    assert state == "CHANNEL_ERROR", states.items
    assert error is not None
    response: dict[str, Any] = json.loads(error)
    return response


def system_error(states: list[State]) -> dict[str, Any]:
    """The system payload the client turned into CHANNEL_ERROR (it JSON-encodes the payload as the error)."""
    errors = [e for s, e in states if s == "CHANNEL_ERROR" and e is not None]
    assert errors, f"no CHANNEL_ERROR in {states!r}"
    payload: dict[str, Any] = json.loads(errors[0])
    return payload


# -- SQL -----------------------------------------------------------------------------------------------------


async def sql(settings: Settings, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement as the database owner, committed; its rows if it returns any."""
    async with await psycopg.AsyncConnection.connect(settings.db_url(), autocommit=True) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall() if cursor.description else []


async def db_send(
    settings: Settings, payload: dict[str, Any], event: str, topic: str, private: bool = True
) -> None:
    """`realtime.send(payload, event, topic, private)`, committed."""
    await sql(settings, "select realtime.send(%s, %s, %s, %s)", (Jsonb(payload), event, topic, private))


async def table_columns(settings: Settings, table: str) -> list[dict[str, str]]:
    """A table's columns as postgres_changes lists them: attnum order, pg_type typname."""
    rows = await sql(
        settings,
        "select a.attname::text, t.typname::text from pg_attribute as a "
        "join pg_type as t on t.oid = a.atttypid "
        "where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum",
        (table,),
    )
    return [{"name": name, "type": typ} for name, typ in rows]


def comparable(record: dict[str, Any], columns: list[dict[str, str]]) -> dict[str, Any]:
    """A record with timestamptz values as instants: two renderings of one time (zones) compare equal."""
    times = {c["name"] for c in columns if c["type"] == "timestamptz"}
    return {
        k: datetime.fromisoformat(v) if k in times and isinstance(v, str) else v for k, v in record.items()
    }


# -- raw frames ----------------------------------------------------------------------------------------------


class Frames:
    """A raw vsn 1.0.0 socket: send objects, read the frames that match."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self._ref = 0

    def ref(self) -> str:
        """The next ref, a decimal string like the clients make."""
        self._ref += 1
        return str(self._ref)

    async def send(
        self, topic: str, event: str, payload: dict[str, Any], ref: str | None, join_ref: str | None
    ) -> None:
        """One client frame."""
        frame = {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref}
        await self.ws.send(json.dumps(frame))

    async def next_where(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        """The next frame (after those already read) that matches; the others are kept in `seen`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout} s; frames so far: {self.seen!r}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError:
                continue
            assert isinstance(raw, str), f"a binary frame on vsn 1.0.0: {raw!r}"
            frame: dict[str, Any] = json.loads(raw)
            self.seen.append(frame)
            if predicate(frame):
                return frame

    async def nothing_where(
        self, predicate: Callable[[dict[str, Any]], bool], seconds: float = QUIET
    ) -> None:
        """No frame matching `predicate` arrives for a while."""
        try:
            frame = await self.next_where(predicate, seconds)
        except AssertionError:
            return
        raise AssertionError(f"unexpected frame {frame!r}")


# -- raw sockets: connect-time refusals and private joins, as the forgery and pairing suites use them ----


def ws_url(settings: Settings, apikey: str) -> str:
    """The Realtime socket URL (vsn 1.0.0) with `apikey`."""
    base = settings.api_url.replace("http", "ws", 1)
    return f"{base}/realtime/v1/websocket?apikey={quote(apikey, safe='')}&vsn=1.0.0"


async def connect_status(url: str) -> int | None:
    """The HTTP status of a refused upgrade, or None when the socket opened."""
    try:
        async with connect(url, open_timeout=10):
            return None
    except InvalidStatus as exc:
        return exc.response.status_code


async def join_private(ws: ClientConnection, topic: str, token: str | None) -> tuple[Frames, dict[str, Any]]:
    """phx_join a private topic (access_token `token` when given): the socket's frames and the reply."""
    frames = Frames(ws)
    payload: dict[str, Any] = {
        "config": {
            "broadcast": {"self": False, "ack": False},
            "presence": {"key": "", "enabled": False},
            "postgres_changes": [],
            "private": True,
        }
    }
    if token is not None:
        payload["access_token"] = token
    ref = frames.ref()
    await frames.send(topic, "phx_join", payload, ref, ref)
    reply = await frames.next_where(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)
    assert reply["topic"] == topic, reply
    result: dict[str, Any] = reply["payload"]
    return frames, result


# -- users a test may remove or demote (the session's world stays as it is) ----------------------------------


async def make_user(settings: Settings, workspace_id: str, role: str) -> tuple[str, str]:
    """A new user with `role`, a member of `workspace_id`, committed: (id, access token)."""
    return await asyncio.to_thread(add_user, settings, workspace_id, role, "rt")


async def delete_users(settings: Settings, user_ids: list[str]) -> None:
    """Remove users made by `make_user` (their profile and memberships go with them)."""
    await sql(settings, "delete from auth.users where id = any(%s::uuid[])", (user_ids,))
