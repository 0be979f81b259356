"""Access taken away while channels are open. When what a user may read shrinks, what reaches their private
channels is held, in commit order, while each is re-checked as a refreshed token would be: one the user may
still read gets what was held and goes on, one they may no longer read is closed with Realtime's reason and
gets nothing committed after the change. And when a hook (hooks.py) says credentials no longer count, the
sockets and channels that hold them close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson

from busymate.gateway.realtime.channel import no_longer_readable
from busymate.gateway.realtime.protocol import V2

if TYPE_CHECKING:
    from busymate.gateway.realtime.channel import Channel
    from busymate.gateway.realtime.hub import Hub


class Rechecks:
    """Re-checks of open channels."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def hold(self, user: str | None) -> None:
        """What `user` (every user, for None) may read shrank: hold what reaches their private channels from
        now on, in commit order, until each is re-checked; then deliver it, or close the channel."""
        channels = [
            channel
            for sock in self.hub.sockets
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
        self.hub.in_background(self._recheck(channels))

    async def _recheck(self, channels: list[Channel]) -> None:
        """Read permission again, as a refreshed token would: close what may no longer be read."""

        verdicts: dict[tuple[str, bytes, bytes], asyncio.Task[tuple[bool, bool]]] = {}
        access = self.hub.access

        async def one(channel: Channel) -> None:
            # One check per (topic, token, headers): a user's sockets on one topic share the answer.
            key = (channel.sub, orjson.dumps(channel.claims), orjson.dumps(channel.socket.headers))
            if key not in verdicts:
                verdicts[key] = asyncio.ensure_future(
                    access.can_read(channel.claims, channel.sub, channel.socket.headers)
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
                self.hub.close(channel)
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

    async def close_refused(
        self, refused: Callable[[dict[str, object]], Awaitable[bool]], reason: str
    ) -> None:
        """Close every socket whose connect-time claims `refused` refuses (silently: it has no channel to
        say it on), and every other channel whose claims it refuses, with `reason` as a system error."""
        for sock in list(self.hub.sockets):
            if await refused(sock.claims):
                sock.close()
                continue
            for channel in list(sock.channels.values()):
                if await refused(channel.claims):
                    channel.system("system", "error", reason)
                    self.hub.close(channel)
