"""Broadcast fan-out (https://supabase.com/docs/guides/realtime/broadcast): a message for a topic is encoded
once per serializer and framed once per serializer, and the same bytes go to every channel of the topic that
may read broadcasts; a channel whose replay or access re-check is under way holds it instead. Messages come
from clients (`broadcast` pushes), from the database (committed realtime.messages rows, in commit order, with
`meta.id`) and from the HTTP API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from busymate.gateway.realtime import protocol
from busymate.gateway.realtime.channel import PREFIX
from busymate.gateway.realtime.protocol import V1, V2, Frame
from busymate.gateway.realtime.transport import wire

if TYPE_CHECKING:
    from busymate.gateway.realtime.channel import Channel
    from busymate.gateway.realtime.hub import Hub


def broadcast_frames(topic: str, message: dict[str, object]) -> tuple[str, str]:
    """A broadcast encoded for both serializers, once each for every subscriber."""
    frame = Frame(topic, "broadcast", message)
    return protocol.encode(frame, V1), protocol.encode(frame, V2)


class FanOut:
    """Delivers broadcasts to the channels of a topic."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def send(
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
        for channel in self.hub.topics.get((sub, private), ()):
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

    async def client_broadcast(self, channel: Channel, frame: Frame) -> None:
        """A `broadcast` push from a client: to the topic's other channels (and its own with `self`)."""
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        event = payload.get("event")
        if not isinstance(event, str):
            return
        if not await channel.may_write(self.hub.access, "broadcast", event):
            return  # silently dropped, as Realtime does; with ack the client times out
        user_payload = payload.get("payload")
        if isinstance(user_payload, bytes):
            binary = protocol.encode_binary_broadcast(channel.topic, event, user_payload, None)
            self.send(channel.sub, channel.private, None, None, binary, exclude=channel)
        else:
            message = {"type": "broadcast", "event": event, "payload": user_payload}
            v1, v2 = broadcast_frames(channel.topic, message)
            self.send(channel.sub, channel.private, None, v1, v2, exclude=channel)
        if channel.ack:
            channel.push("phx_reply", {"status": "ok", "response": {}}, frame.ref)

    def public(self, topic: str, event: str, payload: object, message_id: object) -> None:
        """A public broadcast from the HTTP API, delivered at once."""
        message: dict[str, object] = {"type": "broadcast", "event": event, "payload": payload}
        if isinstance(message_id, str):
            message["meta"] = {"id": message_id}
        v1, v2 = broadcast_frames(PREFIX + topic, message)
        self.send(topic, False, None, v1, v2)

    def database(
        self,
        topic: str,
        private: bool,
        message_id: str,
        event: str,
        raw_payload: str | None,
        binary: bytes | None,
    ) -> None:
        """A committed realtime.messages broadcast, with `meta.id` (its JSON payload spliced, not re-read)."""
        if (topic, private) not in self.hub.topics:
            return
        full = PREFIX + topic
        meta = {"id": message_id}
        if binary is not None:
            self.send(
                topic, private, message_id, None, protocol.encode_binary_broadcast(full, event, binary, meta)
            )
            return
        raw = raw_payload or "{}"
        v1 = protocol.encode_raw_broadcast(full, event, raw, meta, V1)
        v2 = protocol.encode_raw_broadcast(full, event, raw, meta, V2)
        self.send(topic, private, message_id, v1, v2)
