"""A small, reconnecting client of /realtime/v1 for Busymate's own workers (`busymate tail`, the proxy).

It speaks the wire protocol the official clients speak (Phoenix frames, vsn 1.0.0, private channels joined
with the caller's access token, a heartbeat every 25 s) and adds what a long-running worker needs: when the
socket drops it reconnects with backoff, asks for a fresh token, joins its topics again and tells the caller
through `on_state`, so a subscriber always knows it may have missed messages while it was away. It is
configured like the API clients (busymate.api_core): the API's URL, its publishable key and a token source.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from busymate.api_core import AsyncTokenSource, token_soon

log = logging.getLogger("busymate.live")

HEARTBEAT = 25.0
JOIN_TIMEOUT = 10.0
BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)

Handler = Callable[[str, str, dict[str, Any]], Awaitable[None] | None]
"""Called with (topic, event, payload) for each broadcast on a joined topic."""
StateHandler = Callable[[str, str], Awaitable[None] | None]
"""Called with (state, detail): `joined`, `rejoined` (after a drop: messages may have been missed),
`disconnected`, `refused`."""


class JoinRefused(Exception):
    """The server refused a join (the token may not read the topic)."""


@dataclass
class _Topic:
    name: str
    handler: Handler


def socket_url(api_url: str, apikey: str) -> str:
    """The Realtime socket URL of a stack (http -> ws, https -> wss)."""
    base = "ws" + api_url.removeprefix("http")
    return f"{base}/realtime/v1/websocket?apikey={quote(apikey, safe='')}&vsn=1.0.0"


async def _call(fn: Callable[..., Awaitable[None] | None], *args: Any) -> None:
    result = fn(*args)
    if result is not None:
        await result


class LiveClient:
    """Private channels on one socket, kept joined until `close()`.

    `token` (a token, or a callable, plain or async) is asked before each (re)connect and join and may give a
    fresh access token; the publishable key stands in when it gives none.
    """

    def __init__(
        self,
        api_url: str,
        apikey: str,
        token: AsyncTokenSource,
        on_state: StateHandler | None = None,
    ) -> None:
        self._url = socket_url(api_url, apikey)
        self._apikey = apikey
        self._token = token
        self._on_state = on_state
        self._topics: dict[str, _Topic] = {}
        self._refs = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._joined = asyncio.Event()
        self._closing = False

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Join `topic` (now if connected, and after every reconnect)."""
        self._topics[topic] = _Topic(topic, handler)
        if self._ws is not None:
            asyncio.get_running_loop().create_task(self._join_quietly(self._topics[topic]))

    async def start(self, wait: float | None = JOIN_TIMEOUT) -> None:
        """Connect in the background; wait until the first joins succeeded (or raise after `wait`)."""
        self._task = asyncio.create_task(self._run(), name="busymate-live")
        if wait is not None:
            waiter = asyncio.create_task(self._joined.wait())
            done, _ = await asyncio.wait({waiter, self._task}, timeout=wait, return_when="FIRST_COMPLETED")
            if waiter not in done:  # no join yet: cancel the waiter and await it, so no task is left behind
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
            if self._task in done:
                self._task.result()
            if not done:
                raise TimeoutError(
                    f"Realtime did not answer within {wait:.0f} s at {self._url.split('?')[0]}"
                )

    async def close(self) -> None:
        """Leave and close the socket."""
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def set_token(self, token: str) -> None:
        """Send a fresh access token on every joined channel (before the old one expires)."""
        ws = self._ws
        if ws is None:
            return
        for topic in self._topics:
            with contextlib.suppress(ConnectionClosed):
                await self._send(ws, topic, "access_token", {"access_token": token})

    async def send(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        """Broadcast `event` on a joined `topic` (no ack: Realtime drops what the caller may not send);
        ConnectionError while the socket is down."""
        ws = self._ws
        if ws is None or topic not in self._topics:
            raise ConnectionError(f"not joined to {topic}: the socket is down or the topic not subscribed")
        try:
            message = {"type": "broadcast", "event": event, "payload": payload}
            await self._send(ws, topic, "broadcast", message)
        except ConnectionClosed as exc:
            raise ConnectionError(f"the socket closed before {event} was sent on {topic}") from exc

    async def _access_token(self) -> str:
        return await token_soon(self._token) or self._apikey

    def _stopping(self) -> bool:
        return self._closing

    async def _state(self, state: str, detail: str = "") -> None:
        if self._on_state is not None:
            await _call(self._on_state, state, detail)

    async def _send(
        self, ws: ClientConnection, topic: str, event: str, payload: dict[str, Any], *, reply: bool = False
    ) -> str:
        """One client frame; with `reply`, a future for its phx_reply is kept under the frame's ref."""
        ref = str(next(self._refs))
        if reply:
            self._replies[ref] = asyncio.get_running_loop().create_future()
        frame = {
            "topic": f"realtime:{topic}",
            "event": event,
            "payload": payload,
            "ref": ref,
            "join_ref": ref,
        }
        await ws.send(json.dumps(frame))
        return ref

    async def _join(self, ws: ClientConnection, topic: _Topic, token: str) -> None:
        payload = {
            "config": {
                "broadcast": {"self": False, "ack": False},
                "presence": {"key": "", "enabled": False},
                "postgres_changes": [],
                "private": True,
            },
            "access_token": token,
        }
        ref = await self._send(ws, topic.name, "phx_join", payload, reply=True)
        reply = await asyncio.wait_for(self._replies[ref], JOIN_TIMEOUT)
        if reply.get("status") != "ok":
            raise JoinRefused(f"{topic.name}: {json.dumps(reply.get('response'))}")

    async def _join_quietly(self, topic: _Topic) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            await self._join(ws, topic, await self._access_token())
        except (JoinRefused, TimeoutError, ConnectionClosed) as exc:
            await self._state("refused", str(exc))

    async def _heartbeat(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            await self._send(ws, "phoenix", "heartbeat", {})

    async def _reader(self, ws: ClientConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            event = frame.get("event")
            if event == "phx_reply":
                waiter = self._replies.pop(str(frame.get("ref")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(frame.get("payload") or {})
                continue
            topic = str(frame.get("topic", "")).removeprefix("realtime:")
            payload = frame.get("payload") or {}
            if event == "broadcast" and topic in self._topics:
                try:
                    await _call(
                        self._topics[topic].handler,
                        topic,
                        str(payload.get("event")),
                        payload.get("payload") or {},
                    )
                except Exception:
                    log.exception("handler for %s failed", topic)
            elif event in ("phx_close", "phx_error") or (
                event == "system" and payload.get("status") == "error"
            ):
                await self._state("refused", f"{topic}: {payload.get('message') or event}")
                if event != "system":
                    await ws.close()

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                token = await self._access_token()
                async with connect(self._url, open_timeout=10, max_size=64 * 1024 * 1024) as ws:
                    self._ws = ws
                    reader = asyncio.create_task(self._reader(ws))
                    beat = asyncio.create_task(self._heartbeat(ws))
                    try:
                        for topic in list(self._topics.values()):
                            try:
                                await self._join(ws, topic, token)
                            except JoinRefused as exc:
                                if not self._joined.is_set():
                                    raise
                                # one topic refused on a rejoin (access taken away) keeps the others joined,
                                # and is not a reason to drop the socket again: that would loop
                                await self._state("refused", str(exc))
                        attempt = 0
                        await self._state("rejoined" if self._joined.is_set() else "joined", "")
                        self._joined.set()
                        await reader
                        if not self._stopping():
                            await self._state("disconnected", "the server closed the socket")
                    finally:
                        beat.cancel()
                        reader.cancel()
                        self._ws = None
                        for waiter in self._replies.values():
                            waiter.cancel()
                        self._replies.clear()
            except JoinRefused as exc:
                if not self._joined.is_set():
                    raise
                await self._state("refused", str(exc))
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403) and not self._joined.is_set():
                    raise JoinRefused(f"the server refused the socket ({exc.response.status_code})") from exc
                await self._state("disconnected", f"HTTP {exc.response.status_code}")
            except (OSError, ConnectionClosed, TimeoutError) as exc:
                await self._state("disconnected", str(exc) or type(exc).__name__)
            except Exception as exc:  # a token that could not be had, a handler that failed: try again
                if not self._joined.is_set():
                    raise
                await self._state("disconnected", f"{type(exc).__name__}: {exc}")
            if self._stopping():
                return
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            await asyncio.sleep(delay)
