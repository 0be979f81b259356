"""What a server adds to Realtime of its own (its tables, its credentials), registered with `Hub.add_hook`:
Realtime itself knows only tokens, topics and policies.
"""

from __future__ import annotations

from typing import Protocol


class Hook(Protocol):
    """A server's own rules about who may stay connected and what its database messages mean."""

    async def refusal(self, claims: dict[str, object]) -> str | None:
        """Why a verified token no longer counts (None: it does); asked at connect, join and access_token.
        The connection or join is refused as `Unauthorized` with this reason."""

    def on_message(self, topic: str, private: bool, event: str) -> None:
        """A committed database broadcast, seen in commit order before it is delivered (the hook may hold or
        close channels through the Hub, or start background work with `Hub.in_background`)."""
