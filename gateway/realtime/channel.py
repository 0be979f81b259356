"""One joined topic on one socket: what it was joined with, what it may read and send, and the messages it
says to its socket.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from busymate.gateway.realtime.protocol import Frame

if TYPE_CHECKING:
    from busymate.gateway.realtime.access import Access
    from busymate.gateway.realtime.subscriptions import Binding
    from busymate.gateway.realtime.transport import Socket

PREFIX = "realtime:"


def no_longer_readable(topic: str) -> str:
    """Realtime's reason when a re-check finds a private channel no longer readable."""
    return f"You no longer have permission to read from this Channel topic: {topic}"


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
    tracked_size: int = 0  # bytes of the tracked payload, counted in Presence.total_bytes
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

    async def may_write(self, access: Access, extension: str, event: str | None) -> bool:
        """Whether the caller may send `event` (or track presence) here; asked once per event name."""
        if not self.private:
            return True
        key = (extension, event if extension == "broadcast" else None)
        allowed = self.writes.get(key)
        if allowed is None:
            allowed = await access.can_write(self.claims, self.sub, self.socket.headers, extension, key[1])
            self.writes[key] = allowed
        return allowed
