"""`phx_join`: a channel's checks (join rate, channel count, topic, token, read permission of a private
topic), its reply with the postgres_changes bindings, presence state, and the replay of what a reconnecting
subscriber missed, handed over to live delivery with nothing lost or repeated
(https://supabase.com/docs/guides/realtime/protocol, /broadcast#replay).
"""

from __future__ import annotations

import logging
import uuid
import zlib
from typing import TYPE_CHECKING

import orjson

from busymate.gateway.realtime import protocol
from busymate.gateway.realtime.channel import PREFIX, Channel
from busymate.gateway.realtime.limits import TOO_MANY_CHANNELS, TOO_MANY_JOINS
from busymate.gateway.realtime.protocol import V2, Frame, truthy
from busymate.gateway.realtime.tokens import RealtimeError, token_claims

if TYPE_CHECKING:
    from busymate.gateway.realtime.hub import Hub
    from busymate.gateway.realtime.transport import Socket

log = logging.getLogger("busymate.realtime")

REPLAY_DEFAULT = 25
REPLAY_MAX = 1000  # Supabase caps replay at 25 messages; a reconnecting subscriber here may fetch more


def binding_id(binding: dict[str, object]) -> int:
    """A stable, non-zero id for a postgres_changes binding (clients match replies by position)."""
    return zlib.crc32(orjson.dumps(binding, option=orjson.OPT_SORT_KEYS)) % 2_000_000_000 + 1


class Joins:
    """Joins channels to sockets."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def join(self, sock: Socket, frame: Frame) -> None:
        """Join `frame.topic` on `sock`, or answer why not (as Realtime words it)."""
        hub = self.hub

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
            sock.close()
            return
        if frame.topic not in sock.channels and len(sock.channels) >= hub.limits.max_channels_per_client:
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
        private = truthy(config.get("private"))
        raw_bindings = config.get("postgres_changes") or []
        bindings = [b for b in raw_bindings if isinstance(b, dict)] if isinstance(raw_bindings, list) else []
        old = sock.channels.get(frame.topic)
        if old is not None:
            hub.close(old)
        if not sub:
            refuse("TopicNameRequired: You must provide a topic name")
            return
        token = payload.get("access_token") or payload.get("user_token")
        claims = sock.claims
        try:
            if isinstance(token, str) and token and not token.startswith("sb_"):
                claims = token_claims(hub.verifier, token, channel=True)
            await hub.admit(claims)
        except RealtimeError as exc:
            refuse(str(exc))
            return
        replay = bcfg.get("replay") if isinstance(bcfg.get("replay"), dict) else None
        if replay is not None and not private:
            refuse("UnableToReplayMessages: Replay is not allowed for public channels")
            return
        channel = Channel(sock, frame.topic, sub, frame.join_ref, private, claims)
        channel.self_broadcast = truthy(bcfg.get("self"))
        channel.ack = truthy(bcfg.get("ack"))
        channel.presence_key = str(pcfg.get("key") or "") or str(uuid.uuid4())
        channel.presence_enabled = truthy(pcfg.get("enabled"))
        if private:
            channel.read_broadcast, channel.read_presence = await hub.access.can_read(
                claims, sub, sock.headers
            )
            if not (channel.read_broadcast or channel.read_presence):
                refuse(f"Unauthorized: You do not have permissions to read from this Channel topic: {sub}")
                return
        if replay is not None:
            channel.replay_buffer = []
            channel.replaying = True
        sock.channels[frame.topic] = channel
        hub.topics[(sub, private)].add(channel)
        echoed = [{**b, "id": binding_id(b)} for b in bindings]
        channel.push("phx_reply", {"status": "ok", "response": {"postgres_changes": echoed}}, frame.ref)
        hub.tokens.arm_expiry(channel)
        if channel.presence_enabled and channel.read_presence:
            channel.push("presence_state", hub.presence.state((sub, private)))
        if bindings and hub.replication is not None:
            await hub.replication.subscribe(channel, echoed)
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
            rows = await self.hub.access.replay(
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
