"""Presence (https://supabase.com/docs/guides/realtime/presence): `track` and `untrack`, the state a joining
channel gets and the diffs every channel of the topic gets, with each payload and all of them together held
to `limits.Limits` (the state lives in memory for as long as the channels do).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

import orjson

from busymate.gateway.realtime.limits import PRESENCE_FULL, TRACK_TOO_LARGE
from busymate.gateway.realtime.protocol import Frame

if TYPE_CHECKING:
    from busymate.gateway.realtime.channel import Channel
    from busymate.gateway.realtime.hub import Hub

log = logging.getLogger("busymate.realtime")

TopicKey = tuple[str, bool]  # (topic without its prefix, private)


class Presence:
    """Who is present on each topic."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.limits = hub.limits
        self.total_bytes = 0  # all tracked payloads together, held to limits.max_presence_total_bytes
        self.entries: dict[TopicKey, dict[str, list[tuple[Channel, dict[str, object]]]]] = defaultdict(dict)

    def state(self, key: TopicKey) -> dict[str, object]:
        """The `presence_state` payload of a topic."""
        state: dict[str, object] = {}
        for pkey, entries in self.entries.get(key, {}).items():
            state[pkey] = {"metas": [meta for _, meta in entries]}
        return state

    def _diff(self, channel: Channel, joins: Mapping[str, object], leaves: Mapping[str, object]) -> None:
        for other in self.hub.topics.get((channel.sub, channel.private), ()):
            if other.read_presence and not other.closed:
                other.push("presence_diff", {"joins": joins, "leaves": leaves})

    async def push(self, channel: Channel, frame: Frame) -> None:
        """A `presence` message from a client: track or untrack, then the reply."""
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        event = payload.get("event")
        fields = payload.get("payload")
        meta: dict[str, object] = dict(fields) if isinstance(fields, dict) else {}
        size = len(orjson.dumps(meta)) if event == "track" else 0
        if size > self.limits.max_presence_bytes:
            # Kept in memory for the channel's life, so held to a limit; over it Realtime shuts the channel.
            channel.system("system", "error", TRACK_TOO_LARGE)
            self.hub.close(channel)
            return
        if not await channel.may_write(self.hub.access, "presence", None):
            channel.push("phx_reply", {"status": "error", "response": {}}, frame.ref)
            return
        if channel.closed:  # closed while its permission was read (a re-check, the socket gone)
            return
        if event == "track":
            if self.total_bytes - channel.tracked_size + size > self.limits.max_presence_total_bytes:
                log.warning("presence refused: the server holds %d bytes of presence state", self.total_bytes)
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
            self.total_bytes += size
            channel.presence_enabled = True
            entries = self.entries[(channel.sub, channel.private)].setdefault(channel.presence_key, [])
            entries.append((channel, meta))
            leaves = {channel.presence_key: {"metas": [previous]}} if previous is not None else {}
            self._diff(channel, {channel.presence_key: {"metas": [meta]}}, leaves)
        elif event == "untrack":
            self.untrack(channel)
        channel.push("phx_reply", {"status": "ok", "response": {}}, frame.ref)

    def _untrack_entry(self, channel: Channel) -> dict[str, object] | None:
        state = self.entries.get((channel.sub, channel.private))
        previous = channel.tracked
        channel.tracked = None
        self.total_bytes -= channel.tracked_size
        channel.tracked_size = 0
        if state is None or previous is None:
            return previous
        entries = state.get(channel.presence_key, [])
        entries[:] = [(c, m) for c, m in entries if c is not channel]
        if not entries:
            state.pop(channel.presence_key, None)
        if not state:
            self.entries.pop((channel.sub, channel.private), None)
        return previous

    def untrack(self, channel: Channel) -> None:
        """Forget what a channel tracked and tell the topic it left."""
        previous = self._untrack_entry(channel)
        if previous is not None:
            self._diff(channel, {}, {channel.presence_key: {"metas": [previous]}})
