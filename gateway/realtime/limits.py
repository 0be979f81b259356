"""How much one client may take of /realtime/v1, with Supabase Realtime's limits and reasons where it has them
(https://supabase.com/docs/guides/realtime/limits).

Every bound here protects the other users of the same server: database connections (REST shares them),
channels and joins per socket, and the presence state the server keeps in memory while a channel lives.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from busymate.settings import Settings

TOO_MANY_CHANNELS = "ChannelRateLimitReached: Too many channels"
TOO_MANY_JOINS = "ClientJoinRateLimitReached: Too many joins per second"
TOO_MANY_BINDINGS = (
    "Unable to subscribe to changes with given parameters. An exception happened: too many bindings"
)
TRACK_TOO_LARGE = "Track message size exceeded"
PRESENCE_FULL = "PresenceLimitReached: the server holds as much presence state as it may; try again later"


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """The bounds of one Realtime server; the defaults are Supabase's where it has one."""

    # Of the API server's `authenticator` pool, how many connections Realtime's checks may hold at once; the
    # rest are always left to /rest/v1. Realtime also holds two of its own: the slot and the catalog reader.
    db_connections: int = 3
    max_channels_per_client: int = 100  # Supabase: channels per connection
    max_joins_per_second: int = 100  # Supabase: channel joins per second (per project there, per socket here)
    max_bindings_per_channel: int = 100  # postgres_changes bindings one join may subscribe
    # One tracked presence payload, JSON-encoded (Supabase's payload limit on the free plan: 256 KB), and all
    # the presence state of the server together.
    max_presence_bytes: int = 256 * 1024
    max_presence_total_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits a project's settings name."""
        return cls(
            db_connections=max(1, settings.realtime_db_connections),
            max_channels_per_client=settings.realtime_max_channels_per_client,
            max_joins_per_second=settings.realtime_max_joins_per_second,
            max_presence_bytes=settings.realtime_presence_max_kb * 1024,
            max_presence_total_bytes=settings.realtime_presence_total_mb * 1024 * 1024,
        )


class JoinRate:
    """Joins of one socket in the last second."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        """Count a join; False when it is one too many for the last second."""
        now = time.monotonic()
        times = self._times
        while times and now - times[0] >= 1.0:
            times.popleft()
        if len(times) >= self.per_second:
            return False
        times.append(now)
        return True
