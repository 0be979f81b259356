"""/realtime/v1: sockets, channels, broadcast, presence and the HTTP broadcast endpoints
(https://supabase.com/docs/guides/realtime/protocol and /authorization), served by the API server next to
/rest/v1.

One asyncio task reads each socket and handles its frames in order; a second writes its outgoing queue, so a
slow reader never holds up a fan-out. A frame for many subscribers is encoded once per serializer.
Database messages come from `replication.Replication` in commit order. What one client may take (channels,
joins per second, presence kept in memory) is bounded by `limits.Limits`, with Supabase's reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import orjson

from busymate.gateway.edge import Edge, EdgeError, JwtVerifier, bearer, check_times
from busymate.gateway.realtime import protocol
from busymate.gateway.realtime.access import Access
from busymate.gateway.realtime.limits import (
    PRESENCE_FULL,
    TOO_MANY_CHANNELS,
    TOO_MANY_JOINS,
    TRACK_TOO_LARGE,
    JoinRate,
)
from busymate.gateway.realtime.protocol import V1, V2, Frame

if TYPE_CHECKING:
    from busymate.gateway.realtime.replication import Binding, Replication

log = logging.getLogger("busymate.realtime")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PREFIX = "realtime:"
MAX_QUEUE = 50_000  # frames waiting for one slow socket before it is cut off (it can replay what it missed)
MAX_BUFFER = 64 * 1024 * 1024  # bytes waiting in one direct socket's transport, likewise
REPLAY_DEFAULT = 25
REPLAY_MAX = 1000  # Supabase caps replay at 25 messages; a reconnecting subscriber here may fetch more


class RealtimeError(Exception):
    """A join refused with a Realtime code and reason (`str()` gives `Code: reason`)."""

    def __init__(self, code: str, reason: str = "") -> None:
        super().__init__(f"{code}: {reason}" if reason else code)
        self.code = code
        self.reason = reason


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


DEVICE_REVOKED = "This device credential is no longer valid: the device was unpaired or paired again"
ACCESS_TOPIC = "access:"  # access:<user id> or access:all: what a user may read shrank (a trigger says so)


def no_longer_readable(topic: str) -> str:
    """Realtime's reason when a re-check finds a private channel no longer readable."""
    return f"You no longer have permission to read from this Channel topic: {topic}"


def token_claims(verifier: JwtVerifier, token: str, *, channel: bool = False) -> dict[str, object]:
    """Verify a token as Realtime does; RealtimeError with its code and message when it does not pass."""
    try:
        claims = verifier.signed_claims(token)
    except EdgeError as exc:
        if exc.kind in ("bad_signature", "unsupported_alg"):
            raise RealtimeError("JwtSignatureError", "Failed to validate JWT signature") from exc
        raise RealtimeError("MalformedJWT", "The token provided is not a valid JWT") from exc
    exp = claims.get("exp")
    if not claims.get("role") or exp is None:
        raise RealtimeError("InvalidJWTToken", "Fields `role` and `exp` are required in JWT")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise RealtimeError("InvalidJWTToken", "Token expiration time is invalid")
    if exp <= time.time():
        if channel:
            raise RealtimeError("InvalidJWTToken", f"Token has expired {int(time.time() - exp)} seconds ago")
        raise RealtimeError("InvalidJWTToken", "Token has expired")
    try:
        check_times(claims)  # nbf and iat, as PostgREST checks them
    except EdgeError as exc:
        raise RealtimeError("InvalidJWTToken", exc.message) from exc
    return claims


@dataclass(eq=False)
class Channel:
    """One joined topic on one socket."""

    socket: Socket
    topic: str
    sub: str
    join_ref: str | None
    private: bool
    claims: dict[str, object]
    self_broadcast: bool = False
    ack: bool = False
    presence_key: str = ""
    presence_enabled: bool = False
    read_broadcast: bool = True
    read_presence: bool = True
    writes: dict[tuple[str, str | None], bool] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    tracked: dict[str, object] | None = None
    tracked_size: int = 0  # bytes of the tracked payload, counted in Hub.presence_bytes
    replay_buffer: list[tuple[str | None, str | bytes, str | bytes]] | None = None
    replayed: set[str] = field(default_factory=set)  # ids replayed that may still arrive live once
    replaying: bool = False  # the join's replay is being read (replay_buffer collects what arrives live)
    holds: int = 0  # access re-checks under way (replay_buffer holds what arrives until the last one ends)
    expiry: asyncio.TimerHandle | None = None
    closed: bool = False

    def push(self, event: str, payload: object, ref: str | None = None) -> None:
        """A message from this channel to its socket."""
        self.socket.send_frame(Frame(self.topic, event, payload, ref, self.join_ref))

    def system(self, extension: str, status: str, message: str) -> None:
        """A `system` message about this channel."""
        self.push(
            "system", {"extension": extension, "status": status, "message": message, "channel": self.sub}
        )


def wire(data: str | bytes) -> bytes:
    """A whole unmasked WebSocket frame (server to client): text for str, binary for bytes."""
    if isinstance(data, str):
        payload, opcode = data.encode(), 0x81
    else:
        payload, opcode = data, 0x82
    size = len(payload)
    if size < 126:
        return bytes((opcode, size)) + payload
    if size < 65536:
        return bytes((opcode, 126)) + size.to_bytes(2, "big") + payload
    return bytes((opcode, 127)) + size.to_bytes(8, "big") + payload


class Socket:
    """One WebSocket: its serializer, its connect-time claims, its channels and its outgoing queue.

    On uvicorn's sans-I/O WebSocket protocol, frames are written straight to the connection's transport: a
    message for many sockets is framed once and the same bytes go to each (server frames are unmasked), which
    is what makes a fan-out cheap. Elsewhere frames go through ASGI `send` from a writer task.
    """

    def __init__(self, hub: Hub, send: Send, vsn: str, claims: dict[str, object], headers: dict[str, str]):
        self.hub = hub
        self._send = send
        self.vsn = vsn
        self.claims = claims
        self.headers = headers
        self.channels: dict[str, Channel] = {}
        self.join_rate = JoinRate(hub.limits.max_joins_per_second)
        self.queue: deque[str | bytes] = deque()
        self.wakeup = asyncio.Event()
        self.closed = False
        proto = getattr(send, "__self__", None)
        fast = all(hasattr(proto, name) for name in ("transport", "conn", "close_sent", "writable"))
        self._proto: Any = proto if fast else None

    @property
    def direct(self) -> bool:
        """Whether frames go straight to the transport."""
        return self._proto is not None

    def send_frame(self, frame: Frame) -> None:
        """Queue a frame encoded for this socket."""
        self.enqueue(protocol.encode(frame, self.vsn))

    def enqueue(self, data: str | bytes) -> None:
        """Send encoded text or bytes; a socket too far behind is cut off rather than grow without bound."""
        if self._proto is not None:
            self.write_wire(wire(data))
            return
        if self.closed:
            return
        if len(self.queue) >= MAX_QUEUE:
            self._cut_off()
            return
        self.queue.append(data)
        self.wakeup.set()

    def write_wire(self, frame: bytes) -> None:
        """Write a whole frame to the transport (direct sockets only)."""
        proto = self._proto
        if self.closed or proto is None:
            return
        transport = proto.transport
        if proto.close_sent or transport.is_closing():
            self.closed = True
            self.wakeup.set()
            return
        if transport.get_write_buffer_size() > MAX_BUFFER:
            self._cut_off()
            return
        transport.write(frame)

    def _cut_off(self) -> None:
        log.warning("a subscriber fell too far behind; closing its socket (it can replay what it missed)")
        self.closed = True
        self.wakeup.set()

    async def writer(self) -> None:
        """Drain the queue to the socket until it closes."""
        send = self._send
        queue = self.queue
        while not self.closed:
            await self.wakeup.wait()
            self.wakeup.clear()
            while queue:
                data = queue.popleft()
                if isinstance(data, bytes):
                    await send({"type": "websocket.send", "bytes": data})
                else:
                    await send({"type": "websocket.send", "text": data})
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": 1011})


def binding_id(binding: dict[str, object]) -> int:
    """A stable, non-zero id for a postgres_changes binding (clients match replies by position)."""
    return zlib.crc32(orjson.dumps(binding, option=orjson.OPT_SORT_KEYS)) % 2_000_000_000 + 1


class Hub:
    """Every socket and channel of the server, presence state, fan-out."""

    def __init__(
        self,
        edge: Edge,
        access: Access,
    ) -> None:
        self.verifier = edge.verifier
        self.keys = edge.keys
        self.access = access
        self.limits = access.limits
        self.presence_bytes = 0  # all tracked payloads together, held to limits.max_presence_total_bytes
        self.topics: dict[tuple[str, bool], set[Channel]] = defaultdict(set)
        self.presence: dict[tuple[str, bool], dict[str, list[tuple[Channel, dict[str, object]]]]] = (
            defaultdict(dict)
        )
        self.replication: Replication | None = None
        self.sockets: set[Socket] = set()
        self._background: set[asyncio.Task[None]] = set()

    # -- connect ---------------------------------------------------------------------------------------

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
            await self._check_device(claims)
        except RealtimeError as exc:
            await _refuse(scope, send, 401, exc.reason)
            return
        await send({"type": "websocket.accept"})
        sock = Socket(self, send, vsn, claims, {k: v for k, v in headers.items() if k != "cookie"})
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
            sock.closed = True
            sock.wakeup.set()
            for channel in list(sock.channels.values()):
                self._drop(channel)
            self.sockets.discard(sock)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    # -- frames ----------------------------------------------------------------------------------------

    async def _handle(self, sock: Socket, frame: Frame) -> None:
        if frame.topic == "phoenix":
            if frame.event == "heartbeat":
                sock.send_frame(Frame("phoenix", "phx_reply", {"status": "ok", "response": {}}, frame.ref))
            return
        if frame.event == "phx_join":
            await self._join(sock, frame)
            return
        channel = sock.channels.get(frame.topic)
        if channel is None or channel.closed:
            return
        if frame.event == "phx_leave":
            channel.push("phx_reply", {"status": "ok", "response": {}}, frame.ref)
            self._close(channel)
        elif frame.event == "access_token":
            await self._refresh(channel, frame.payload)
        elif frame.event == "broadcast":
            await self._broadcast_push(channel, frame)
        elif frame.event == "presence":
            await self._presence_push(channel, frame)

    async def _join(self, sock: Socket, frame: Frame) -> None:
        def refuse(reason: str) -> None:
            sock.send_frame(
                Frame(
                    frame.topic,
                    "phx_reply",
                    {"status": "error", "response": {"reason": reason}},
                    frame.ref,
                    frame.join_ref,
                )
            )

        if not frame.topic.startswith(PREFIX):
            refuse("unmatched topic")
            return
        if not sock.join_rate.allow():
            refuse(TOO_MANY_JOINS)  # and, as Realtime does, disconnect the socket
            sock.closed = True
            sock.wakeup.set()
            return
        if frame.topic not in sock.channels and len(sock.channels) >= self.limits.max_channels_per_client:
            refuse(TOO_MANY_CHANNELS)
            return
        sub = frame.topic[len(PREFIX) :]
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
        assert isinstance(config, dict)
        bcfg = config.get("broadcast") if isinstance(config.get("broadcast"), dict) else {}
        pcfg = config.get("presence") if isinstance(config.get("presence"), dict) else {}
        assert isinstance(bcfg, dict)
        assert isinstance(pcfg, dict)
        private = _truthy(config.get("private"))
        raw_bindings = config.get("postgres_changes") or []
        bindings = [b for b in raw_bindings if isinstance(b, dict)] if isinstance(raw_bindings, list) else []
        old = sock.channels.get(frame.topic)
        if old is not None:
            self._close(old)
        if not sub:
            refuse("TopicNameRequired: You must provide a topic name")
            return
        token = payload.get("access_token") or payload.get("user_token")
        claims = sock.claims
        try:
            if isinstance(token, str) and token and not token.startswith("sb_"):
                claims = token_claims(self.verifier, token, channel=True)
            await self._check_device(claims)
        except RealtimeError as exc:
            refuse(str(exc))
            return
        replay = bcfg.get("replay") if isinstance(bcfg.get("replay"), dict) else None
        if replay is not None and not private:
            refuse("UnableToReplayMessages: Replay is not allowed for public channels")
            return
        channel = Channel(sock, frame.topic, sub, frame.join_ref, private, claims)
        channel.self_broadcast = _truthy(bcfg.get("self"))
        channel.ack = _truthy(bcfg.get("ack"))
        channel.presence_key = str(pcfg.get("key") or "") or str(uuid.uuid4())
        channel.presence_enabled = _truthy(pcfg.get("enabled"))
        if private:
            channel.read_broadcast, channel.read_presence = await self.access.can_read(
                claims, sub, sock.headers
            )
            if not (channel.read_broadcast or channel.read_presence):
                refuse(f"Unauthorized: You do not have permissions to read from this Channel topic: {sub}")
                return
        if replay is not None:
            channel.replay_buffer = []
            channel.replaying = True
        sock.channels[frame.topic] = channel
        self.topics[(sub, private)].add(channel)
        echoed = [{**b, "id": binding_id(b)} for b in bindings]
        channel.push("phx_reply", {"status": "ok", "response": {"postgres_changes": echoed}}, frame.ref)
        self._arm_expiry(channel)
        if channel.presence_enabled and channel.read_presence:
            channel.push("presence_state", self._presence_state((sub, private)))
        if bindings and self.replication is not None:
            await self.replication.subscribe(channel, echoed)
        if replay is not None:
            await self._replay(channel, replay)

    async def _replay(self, channel: Channel, replay: dict[str, object]) -> None:
        """Past messages first, then whatever arrived live meanwhile, each once."""
        since = replay.get("since")
        limit = replay.get("limit")
        since_ms = float(since) if isinstance(since, int | float) and not isinstance(since, bool) else 0.0
        count = int(limit) if isinstance(limit, int) and not isinstance(limit, bool) else REPLAY_DEFAULT
        count = max(1, min(count, REPLAY_MAX))
        seen: set[str] = set()
        try:
            rows = await self.access.replay(
                channel.claims, channel.sub, channel.socket.headers, since_ms, count
            )
        except Exception:
            log.exception("replay on %s failed", channel.sub)
            rows = []
        channel.replaying = False
        if channel.closed:  # closed meanwhile (its reader's access was revoked, say): nothing more goes out
            return
        sock = channel.socket
        for row in rows:
            seen.add(row.id)
            meta = {"replayed": True, "id": row.id}
            if row.binary is not None:
                if sock.vsn == V2:
                    sock.enqueue(protocol.encode_binary_broadcast(channel.topic, row.event, row.binary, meta))
            else:
                sock.enqueue(
                    protocol.encode_raw_broadcast(
                        channel.topic, row.event, row.payload or "{}", meta, sock.vsn
                    )
                )
        if channel.holds:  # an access re-check is under way: it delivers what arrived live, or closes
            channel.replayed = seen
            return
        buffered = channel.replay_buffer or []
        channel.replay_buffer = None
        for message_id, v1, v2 in buffered:
            if message_id is None or message_id not in seen:
                sock.enqueue(v2 if sock.vsn == V2 else v1)
            else:
                seen.discard(message_id)
        # A replayed message committed just before the replay read it may still come from the slot once.
        channel.replayed = seen

    def _arm_expiry(self, channel: Channel) -> None:
        if channel.expiry is not None:
            channel.expiry.cancel()
        exp = channel.claims.get("exp")
        if not isinstance(exp, int | float):
            return
        delay = max(0.0, float(exp) - time.time())
        channel.expiry = asyncio.get_running_loop().call_later(delay, self._expire, channel)

    def _expire(self, channel: Channel) -> None:
        if channel.closed:
            return
        exp = channel.claims.get("exp")
        age = int(time.time() - float(exp)) if isinstance(exp, int | float) else 0
        channel.system("system", "error", f"Token has expired {age} seconds ago")
        self._close(channel)

    async def _refresh(self, channel: Channel, payload: object) -> None:
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            return
        if token.startswith("sb_"):
            claims = channel.socket.claims
        else:
            try:
                claims = token_claims(self.verifier, token, channel=True)
                await self._check_device(claims)
            except RealtimeError as exc:
                channel.system("system", "error", exc.reason or exc.code)
                self._close(channel)
                return
        channel.claims = claims
        channel.writes.clear()
        if channel.private:
            channel.read_broadcast, channel.read_presence = await self.access.can_read(
                claims, channel.sub, channel.socket.headers
            )
            if not (channel.read_broadcast or channel.read_presence):
                channel.system("system", "error", no_longer_readable(channel.sub))
                self._close(channel)
                return
        self._arm_expiry(channel)
        if channel.bindings and self.replication is not None:
            await self.replication.refresh(channel)

    # -- broadcast -------------------------------------------------------------------------------------

    async def _may_write(self, channel: Channel, extension: str, event: str | None) -> bool:
        if not channel.private:
            return True
        key = (extension, event if extension == "broadcast" else None)
        allowed = channel.writes.get(key)
        if allowed is None:
            allowed = await self.access.can_write(
                channel.claims, channel.sub, channel.socket.headers, extension, key[1]
            )
            channel.writes[key] = allowed
        return allowed

    async def _broadcast_push(self, channel: Channel, frame: Frame) -> None:
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        event = payload.get("event")
        if not isinstance(event, str):
            return
        if not await self._may_write(channel, "broadcast", event):
            return  # silently dropped, as Realtime does; with ack the client times out
        user_payload = payload.get("payload")
        if isinstance(user_payload, bytes):
            binary = protocol.encode_binary_broadcast(channel.topic, event, user_payload, None)
            self.fan_out(channel.sub, channel.private, None, None, binary, exclude=channel)
        else:
            message = {"type": "broadcast", "event": event, "payload": user_payload}
            v1, v2 = _broadcast_frames(channel.topic, message)
            self.fan_out(channel.sub, channel.private, None, v1, v2, exclude=channel)
        if channel.ack:
            channel.push("phx_reply", {"status": "ok", "response": {}}, frame.ref)

    def fan_out(
        self,
        sub: str,
        private: bool,
        message_id: str | None,
        v1: str | None,
        v2: str | bytes,
        *,
        exclude: Channel | None = None,
    ) -> int:
        """Queue a message for each channel on (sub, private) that may read broadcasts; returns how many."""
        delivered = 0
        wires: dict[str, bytes] = {}
        for channel in self.topics.get((sub, private), ()):
            if channel is exclude and not channel.self_broadcast:
                continue
            if not channel.read_broadcast or channel.closed:
                continue
            sock = channel.socket
            data = v2 if sock.vsn == V2 else v1
            if data is None:
                continue
            if channel.replay_buffer is not None:
                channel.replay_buffer.append((message_id, v1 or "", v2))
            elif message_id is not None and message_id in channel.replayed:
                channel.replayed.discard(message_id)  # committed before the replay read it, polled after
            elif sock.direct:
                framed = wires.get(sock.vsn)
                if framed is None:
                    framed = wires[sock.vsn] = wire(data)
                sock.write_wire(framed)
            else:
                sock.enqueue(data)
            delivered += 1
        return delivered

    async def _check_device(self, claims: dict[str, object]) -> None:
        """A device token counts only while its credential is current (docs/security-model.md)."""
        if claims.get("role") == "device" and not await self.access.device_is_current(claims):
            raise RealtimeError("Unauthorized", DEVICE_REVOKED)

    async def recheck_device(self, device_uuid: str) -> None:
        """`unpair` or `paired` was published for a device: close what is held with a credential that is no
        longer current (the channels it joined, and sockets it opened with its token)."""
        verdicts: dict[str, bool] = {}

        async def current(claims: dict[str, object]) -> bool:
            cred = str(claims.get("cred"))
            if cred not in verdicts:
                verdicts[cred] = await self.access.device_is_current(claims)
            return verdicts[cred]

        def held(claims: dict[str, object]) -> bool:
            return claims.get("role") == "device" and claims.get("sub") == device_uuid

        for sock in list(self.sockets):
            if held(sock.claims) and not await current(sock.claims):
                sock.closed = True
                sock.wakeup.set()
                continue
            for channel in list(sock.channels.values()):
                if held(channel.claims) and not await current(channel.claims):
                    channel.system("system", "error", DEVICE_REVOKED)
                    self._close(channel)

    def hold_for_recheck(self, user: str | None) -> None:
        """What `user` (every user, for None) may read shrank: hold what reaches their private channels from
        now on, in commit order, until each is re-checked; then deliver it, or close the channel."""
        channels = [
            channel
            for sock in self.sockets
            for channel in sock.channels.values()
            if channel.private
            and not channel.closed
            and channel.claims.get("role") == "authenticated"
            and (user is None or channel.claims.get("sub") == user)
        ]
        if not channels:
            return
        for channel in channels:
            channel.holds += 1
            if channel.replay_buffer is None:
                channel.replay_buffer = []
        self._in_background(self._recheck(channels))

    async def _recheck(self, channels: list[Channel]) -> None:
        """Read permission again, as a refreshed token would: close what may no longer be read."""

        verdicts: dict[tuple[str, bytes, bytes], asyncio.Task[tuple[bool, bool]]] = {}

        async def one(channel: Channel) -> None:
            # One check per (topic, token, headers): a user's sockets on one topic share the answer.
            key = (channel.sub, orjson.dumps(channel.claims), orjson.dumps(channel.socket.headers))
            if key not in verdicts:
                verdicts[key] = asyncio.ensure_future(
                    self.access.can_read(channel.claims, channel.sub, channel.socket.headers)
                )
            try:
                verdict = await verdicts[key]
            finally:
                channel.holds -= 1
            if channel.closed:
                return
            channel.writes.clear()
            channel.read_broadcast, channel.read_presence = verdict
            if not any(verdict):
                channel.replay_buffer = None
                channel.system("system", "error", no_longer_readable(channel.sub))
                self._close(channel)
            elif channel.holds == 0 and not channel.replaying:
                self._release(channel)

        await asyncio.gather(*(one(channel) for channel in channels))

    def _release(self, channel: Channel) -> None:
        """Deliver what was held for a channel while it was re-checked."""
        buffered = channel.replay_buffer or []
        channel.replay_buffer = None
        sock = channel.socket
        for message_id, v1, v2 in buffered:
            if message_id is not None and message_id in channel.replayed:
                channel.replayed.discard(message_id)
            elif channel.read_broadcast:
                sock.enqueue(v2 if sock.vsn == V2 else v1)

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(_logged(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def deliver_database(
        self,
        topic: str,
        private: bool,
        message_id: str,
        event: str,
        raw_payload: str | None,
        binary: bytes | None,
    ) -> None:
        """A committed realtime.messages broadcast, with `meta.id`."""
        if event in ("unpair", "paired") and topic.startswith("device:"):
            # Delivered first, so the device hears why, then what holds a voided credential closes.
            task = asyncio.get_running_loop().create_task(self.recheck_device(topic[len("device:") :]))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if private and event == "changed" and topic.startswith(ACCESS_TOPIC):
            target = topic[len(ACCESS_TOPIC) :]
            self.hold_for_recheck(None if target == "all" else target)
        if (topic, private) not in self.topics:
            return
        full = PREFIX + topic
        meta = {"id": message_id}
        if binary is not None:
            self.fan_out(
                topic, private, message_id, None, protocol.encode_binary_broadcast(full, event, binary, meta)
            )
            return
        raw = raw_payload or "{}"
        v1 = protocol.encode_raw_broadcast(full, event, raw, meta, V1)
        v2 = protocol.encode_raw_broadcast(full, event, raw, meta, V2)
        self.fan_out(topic, private, message_id, v1, v2)

    # -- presence --------------------------------------------------------------------------------------

    def _presence_state(self, key: tuple[str, bool]) -> dict[str, object]:
        state: dict[str, object] = {}
        for pkey, entries in self.presence.get(key, {}).items():
            state[pkey] = {"metas": [meta for _, meta in entries]}
        return state

    def _presence_diff(
        self, channel: Channel, joins: Mapping[str, object], leaves: Mapping[str, object]
    ) -> None:
        for other in self.topics.get((channel.sub, channel.private), ()):
            if other.read_presence and not other.closed:
                other.push("presence_diff", {"joins": joins, "leaves": leaves})

    async def _presence_push(self, channel: Channel, frame: Frame) -> None:
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        event = payload.get("event")
        fields = payload.get("payload")
        meta: dict[str, object] = dict(fields) if isinstance(fields, dict) else {}
        size = len(orjson.dumps(meta)) if event == "track" else 0
        if size > self.limits.max_presence_bytes:
            # Kept in memory for the channel's life, so held to a limit; over it Realtime shuts the channel.
            channel.system("system", "error", TRACK_TOO_LARGE)
            self._close(channel)
            return
        if not await self._may_write(channel, "presence", None):
            channel.push("phx_reply", {"status": "error", "response": {}}, frame.ref)
            return
        if channel.closed:  # closed while its permission was read (a re-check, the socket gone)
            return
        if event == "track":
            if self.presence_bytes - channel.tracked_size + size > self.limits.max_presence_total_bytes:
                log.warning(
                    "presence refused: the server holds %d bytes of presence state", self.presence_bytes
                )
                channel.push(
                    "phx_reply", {"status": "error", "response": {"reason": PRESENCE_FULL}}, frame.ref
                )
                return
            meta["phx_ref"] = uuid.uuid4().hex[:20]
            previous = channel.tracked
            if previous is not None:
                meta["phx_ref_prev"] = previous["phx_ref"]
            self._untrack_entry(channel)
            channel.tracked = meta
            channel.tracked_size = size
            self.presence_bytes += size
            channel.presence_enabled = True
            entries = self.presence[(channel.sub, channel.private)].setdefault(channel.presence_key, [])
            entries.append((channel, meta))
            leaves = {channel.presence_key: {"metas": [previous]}} if previous is not None else {}
            self._presence_diff(channel, {channel.presence_key: {"metas": [meta]}}, leaves)
        elif event == "untrack":
            self._untrack(channel)
        channel.push("phx_reply", {"status": "ok", "response": {}}, frame.ref)

    def _untrack_entry(self, channel: Channel) -> dict[str, object] | None:
        state = self.presence.get((channel.sub, channel.private))
        previous = channel.tracked
        channel.tracked = None
        self.presence_bytes -= channel.tracked_size
        channel.tracked_size = 0
        if state is None or previous is None:
            return previous
        entries = state.get(channel.presence_key, [])
        entries[:] = [(c, m) for c, m in entries if c is not channel]
        if not entries:
            state.pop(channel.presence_key, None)
        if not state:
            self.presence.pop((channel.sub, channel.private), None)
        return previous

    def _untrack(self, channel: Channel) -> None:
        previous = self._untrack_entry(channel)
        if previous is not None:
            self._presence_diff(channel, {}, {channel.presence_key: {"metas": [previous]}})

    # -- closing ---------------------------------------------------------------------------------------

    def _drop(self, channel: Channel) -> None:
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
        self._untrack(channel)
        if channel.socket.channels.get(channel.topic) is channel:
            del channel.socket.channels[channel.topic]
        if channel.bindings and self.replication is not None:
            self.replication.unsubscribe(channel)

    def _close(self, channel: Channel) -> None:
        """Stop a channel and send `phx_close`."""
        if channel.closed:
            return
        self._drop(channel)
        channel.socket.send_frame(Frame(channel.topic, "phx_close", {}, channel.join_ref, channel.join_ref))

    # -- HTTP ------------------------------------------------------------------------------------------

    def http_claims(self, headers: dict[str, str]) -> dict[str, object]:
        """Who sends an HTTP broadcast: the bearer token, else the apikey; RealtimeError if neither passes."""
        token = bearer(headers) or None
        if token is None or (token.startswith("sb_") and token not in self.keys):
            token = headers.get("apikey") or token
        if not token:
            raise RealtimeError("Unauthorized")
        return token_claims(self.verifier, self.keys.legacy(token))

    async def http(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> HttpAnswer:
        """POST /realtime/v1/api/broadcast and /realtime/v1/api/broadcast/{topic}/events/{event}."""
        if method != "POST":
            return HttpAnswer(404, {"message": "Not found"})
        try:
            claims = self.http_claims(headers)
        except RealtimeError:
            return HttpAnswer(401, {"message": "Unauthorized"})
        if path == "/api/broadcast":
            return await self._http_batch(claims, headers, body)
        parts = path.split("/")
        if len(parts) == 6 and parts[1:3] == ["api", "broadcast"] and parts[4] == "events":
            topic, event = unquote(parts[3]), unquote(parts[5])
            private = _truthy(dict(parse_qsl(query)).get("private"))
            return await self._http_single(claims, headers, topic, event, private, body)
        return HttpAnswer(404, {"message": "Not found"})

    async def _http_batch(
        self, claims: dict[str, object], headers: dict[str, str], body: bytes
    ) -> HttpAnswer:
        try:
            data = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return HttpAnswer(422, {"errors": {"messages": ["the body is not JSON"]}})
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list) or not messages:
            return HttpAnswer(422, {"errors": {"messages": ["can't be blank"]}})
        problems = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                problems.append(f"message {i} is not an object")
            elif not isinstance(m.get("topic"), str) or not m["topic"]:
                problems.append(f"message {i}: topic can't be blank")
            elif not isinstance(m.get("event"), str) or not m["event"]:
                problems.append(f"message {i}: event can't be blank")
            elif not isinstance(m.get("payload"), dict):
                problems.append(f"message {i}: payload must be an object")
        if problems:
            return HttpAnswer(422, {"errors": {"messages": problems}})
        private = [m for m in messages if _truthy(m.get("private"))]
        for m in messages:
            if not _truthy(m.get("private")):
                self._deliver_public(m["topic"], m["event"], m["payload"], m.get("id"))
        if private:
            rows = [
                {
                    "topic": m["topic"],
                    "event": m["event"],
                    "payload_json": orjson.dumps(m["payload"]).decode(),
                    "id": m.get("id") if isinstance(m.get("id"), str) else None,
                }
                for m in private
            ]
            try:
                await self.access.store(claims, headers, rows)
            except Exception as exc:
                log.info("HTTP broadcast refused: %s", exc)
        return HttpAnswer(202, None)

    def _deliver_public(self, topic: str, event: str, payload: object, message_id: object) -> None:
        message: dict[str, object] = {"type": "broadcast", "event": event, "payload": payload}
        if isinstance(message_id, str):
            message["meta"] = {"id": message_id}
        full = PREFIX + topic
        v1, v2 = _broadcast_frames(full, message)
        self.fan_out(topic, False, None, v1, v2)

    async def _http_single(
        self,
        claims: dict[str, object],
        headers: dict[str, str],
        topic: str,
        event: str,
        private: bool,
        body: bytes,
    ) -> HttpAnswer:
        ctype = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        binary: bytes | None = None
        payload: object = None
        if ctype == "application/octet-stream":
            binary = body
        elif ctype == "application/json":
            try:
                payload = orjson.loads(body or b"{}")
            except orjson.JSONDecodeError:
                return HttpAnswer(422, {"error": "the body is not JSON"})
        else:
            return HttpAnswer(415, {"error": f"unsupported content type {ctype}"})
        if not private:
            if binary is not None:
                full = PREFIX + topic
                self.fan_out(
                    topic, False, None, None, protocol.encode_binary_broadcast(full, event, binary, None)
                )
            else:
                self._deliver_public(topic, event, payload, None)
            return HttpAnswer(202, None)
        row: dict[str, object] = {
            "topic": topic,
            "event": event,
            "payload_json": orjson.dumps(payload).decode(),
            "binary": binary,
            "id": None,
        }
        try:
            stored = await self.access.store(claims, headers, [row])
        except Exception as exc:
            log.info("HTTP broadcast refused: %s", exc)
            stored = [False]
        if not stored[0]:
            return HttpAnswer(403, {"message": "Unauthorized"})
        return HttpAnswer(202, None)


@dataclass(slots=True)
class HttpAnswer:
    """Status and JSON body of an HTTP broadcast answer (None: empty)."""

    status: int
    body: object


def _broadcast_frames(topic: str, message: dict[str, object]) -> tuple[str, str]:
    """A broadcast encoded for both serializers, once each for every subscriber."""
    frame = Frame(topic, "broadcast", message)
    return protocol.encode(frame, V1), protocol.encode(frame, V2)


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
