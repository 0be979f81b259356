"""Frames out to one WebSocket: on uvicorn's sans-I/O protocol, whole frames written straight to the
connection's private transport (a message for many sockets is framed once and the same bytes go to each:
server frames are unmasked, which is what makes a fan-out cheap); elsewhere, through ASGI `send` from a writer
task. Either way a socket too far behind is cut off rather than let the server grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from busymate.gateway.realtime import protocol
from busymate.gateway.realtime.limits import JoinRate
from busymate.gateway.realtime.protocol import Frame

if TYPE_CHECKING:
    from busymate.gateway.realtime.channel import Channel

log = logging.getLogger("busymate.realtime")

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_QUEUE = 50_000  # frames waiting for one slow socket before it is cut off (it can replay what it missed)
MAX_BUFFER = 64 * 1024 * 1024  # bytes waiting in one direct socket's transport, likewise


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
    """One WebSocket: its serializer, its connect-time claims, its channels and its outgoing queue."""

    def __init__(
        self, send: Send, vsn: str, claims: dict[str, object], headers: dict[str, str], join_rate: JoinRate
    ) -> None:
        self._send = send
        self.vsn = vsn
        self.claims = claims
        self.headers = headers
        self.channels: dict[str, Channel] = {}
        self.join_rate = join_rate
        self.queue: deque[str | bytes] = deque()
        self.wakeup = asyncio.Event()
        self.closed = False
        proto = getattr(send, "__self__", None)
        fast = all(hasattr(proto, name) for name in ("transport", "conn", "close_sent", "writable"))
        self._proto: Any = proto if fast else None
        self.direct = self._proto is not None  # frames go straight to the transport (read per fan-out)

    def close(self) -> None:
        """Stop sending; the reader and writer tasks end and the connection closes."""
        self.closed = True
        self.wakeup.set()

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
            self.close()
            return
        if transport.get_write_buffer_size() > MAX_BUFFER:
            self._cut_off()
            return
        transport.write(frame)

    def _cut_off(self) -> None:
        log.warning("a subscriber fell too far behind; closing its socket (it can replay what it missed)")
        self.close()

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
