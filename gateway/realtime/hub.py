"""/realtime/v1's sockets (https://supabase.com/docs/guides/realtime/protocol), served by the API server next
to /rest/v1: the connection (its key checked as Realtime checks it), the frames read from it handed to the
module whose job they are, the registry of sockets, channels and topics, and closing a channel.

One asyncio task reads each socket and handles its frames in order; a second writes its outgoing queue
(transport.py), so a slow reader never holds up a fan-out (fanout.py). Joins are joins.py, a channel's token
tokens.py, presence presence.py, access re-checks recheck.py, the HTTP API broadcast_api.py. Database
messages come from `replication.Replication` in commit order. A server's own rules are hooks (hooks.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from busymate.gateway.edge import Edge
from busymate.gateway.realtime import protocol
from busymate.gateway.realtime.access import Access
from busymate.gateway.realtime.broadcast_api import BroadcastApi, HttpAnswer
from busymate.gateway.realtime.fanout import FanOut
from busymate.gateway.realtime.joins import Joins
from busymate.gateway.realtime.limits import JoinRate
from busymate.gateway.realtime.presence import Presence
from busymate.gateway.realtime.protocol import V1, V2, Frame
from busymate.gateway.realtime.recheck import Rechecks
from busymate.gateway.realtime.tokens import ChannelTokens, RealtimeError, token_claims
from busymate.gateway.realtime.transport import Send, Socket

if TYPE_CHECKING:
    from busymate.gateway.realtime.channel import Channel
    from busymate.gateway.realtime.hooks import Hook
    from busymate.gateway.realtime.replication import Replication

log = logging.getLogger("busymate.realtime")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class Hub:
    """Every socket and channel of the server."""

    def __init__(self, edge: Edge, access: Access) -> None:
        self.verifier = edge.verifier
        self.keys = edge.keys
        self.access = access
        self.limits = access.limits
        self.topics: dict[tuple[str, bool], set[Channel]] = defaultdict(set)
        self.sockets: set[Socket] = set()
        self.replication: Replication | None = None
        self.hooks: list[Hook] = []
        self.joins = Joins(self)
        self.tokens = ChannelTokens(self)
        self.presence = Presence(self)
        self.fanout = FanOut(self)
        self.rechecks = Rechecks(self)
        self.api = BroadcastApi(self)
        self._background: set[asyncio.Task[None]] = set()

    def add_hook(self, hook: Hook) -> None:
        """Register a server's own rules (hooks.py)."""
        self.hooks.append(hook)

    async def admit(self, claims: dict[str, object]) -> None:
        """RealtimeError `Unauthorized` when a hook says a verified token no longer counts."""
        for hook in self.hooks:
            reason = await hook.refusal(claims)
            if reason is not None:
                raise RealtimeError("Unauthorized", reason)

    def in_background(self, work: Awaitable[None]) -> None:
        """Run work on the loop, keeping its task alive until it ends; an error is logged."""
        task = asyncio.get_running_loop().create_task(_logged(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one /realtime/v1/websocket connection."""
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        vsn = query.get("vsn", V1)
        if vsn not in (V1, V2):
            vsn = V1
        apikey = query.get("apikey") or headers.get("x-api-key") or headers.get("apikey")
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if not apikey:
            await _refuse(scope, send, 401, "API key is missing")
            return
        try:
            claims = token_claims(self.verifier, self.keys.legacy(apikey))
            await self.admit(claims)
        except RealtimeError as exc:
            await _refuse(scope, send, 401, exc.reason)
            return
        await send({"type": "websocket.accept"})
        kept = {k: v for k, v in headers.items() if k != "cookie"}
        sock = Socket(send, vsn, claims, kept, JoinRate(self.limits.max_joins_per_second))
        self.sockets.add(sock)
        writer = asyncio.create_task(sock.writer())
        try:
            while not sock.closed:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive":
                    continue
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                frame = protocol.decode(data, vsn)
                if frame is None:
                    log.info("ignoring a frame that does not parse")
                    continue
                try:
                    await self._handle(sock, frame)
                except orjson.JSONEncodeError as exc:  # nested past what JSON writes back (254 levels)
                    log.info("refused %s on %s: %s", frame.event, frame.topic, exc)
                    if frame.ref is not None:
                        reason = "payload nested too deeply to deliver"
                        reply = {"status": "error", "response": {"reason": reason}}
                        sock.send_frame(Frame(frame.topic, "phx_reply", reply, frame.ref))
                except Exception:
                    log.exception("error handling %s on %s", frame.event, frame.topic)
        finally:
            sock.close()
            for channel in list(sock.channels.values()):
                self.drop(channel)
            self.sockets.discard(sock)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _handle(self, sock: Socket, frame: Frame) -> None:
        if frame.topic == "phoenix":
            if frame.event == "heartbeat":
                sock.send_frame(Frame("phoenix", "phx_reply", {"status": "ok", "response": {}}, frame.ref))
            return
        if frame.event == "phx_join":
            await self.joins.join(sock, frame)
            return
        channel = sock.channels.get(frame.topic)
        if channel is None or channel.closed:
            return
        if frame.event == "phx_leave":
            channel.push("phx_reply", {"status": "ok", "response": {}}, frame.ref)
            self.close(channel)
        elif frame.event == "access_token":
            await self.tokens.refresh(channel, frame.payload)
        elif frame.event == "broadcast":
            await self.fanout.client_broadcast(channel, frame)
        elif frame.event == "presence":
            await self.presence.push(channel, frame)

    def deliver_database(
        self,
        topic: str,
        private: bool,
        message_id: str,
        event: str,
        raw_payload: str | None,
        binary: bytes | None,
    ) -> None:
        """A committed realtime.messages broadcast, with `meta.id`: seen by the hooks, then fanned out."""
        for hook in self.hooks:
            hook.on_message(topic, private, event)
        self.fanout.database(topic, private, message_id, event, raw_payload, binary)

    def drop(self, channel: Channel) -> None:
        """Forget a channel without telling its socket (the socket is gone or told separately)."""
        if channel.closed:
            return
        channel.closed = True
        if channel.expiry is not None:
            channel.expiry.cancel()
        key = (channel.sub, channel.private)
        subscribers = self.topics.get(key)
        if subscribers is not None:
            subscribers.discard(channel)
            if not subscribers:
                del self.topics[key]
        self.presence.untrack(channel)
        if channel.socket.channels.get(channel.topic) is channel:
            del channel.socket.channels[channel.topic]
        if channel.bindings and self.replication is not None:
            self.replication.unsubscribe(channel)

    def close(self, channel: Channel) -> None:
        """Stop a channel and send `phx_close`."""
        if channel.closed:
            return
        self.drop(channel)
        channel.socket.send_frame(Frame(channel.topic, "phx_close", {}, channel.join_ref, channel.join_ref))

    async def http(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> HttpAnswer:
        """POST /realtime/v1/api/broadcast and /realtime/v1/api/broadcast/{topic}/events/{event}."""
        return await self.api.answer(method, path, query, headers, body)


async def _logged(work: Awaitable[None]) -> None:
    """Run background work; an error is logged, never lost with its task."""
    try:
        await work
    except Exception:
        log.exception("a realtime background task failed")


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """Answer the upgrade request with an HTTP error instead of accepting it."""
    body = orjson.dumps({"error": message})
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": message})
