"""Busymate's own rules for /realtime/v1 (docs/realtime.md, docs/security-model.md), a hook the server
registers with the Hub, which itself knows nothing of Busymate's tables:

- a device token counts only while its credential is the device's (not unpaired, not paired again): checked
  at connect, join and access_token, and when `unpair` or `paired` is published on `device:<id>`, what holds
  a voided credential closes;
- `changed` on the server-only topic `access:<user id>` (`access:all` for everyone), published by the
  database when a member is removed or their role changes, means what a user may read shrank: their private
  channels are held and re-checked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from busymate.gateway.realtime.hub import Hub

log = logging.getLogger("busymate.realtime")

DEVICE_REVOKED = "This device credential is no longer valid: the device was unpaired or paired again"
DEVICE_TOPIC = "device:"  # device:<device id>: the database publishes `unpair` and `paired` there
ACCESS_TOPIC = "access:"  # access:<user id> or access:all: what a user may read shrank (a trigger says so)


class BusymateRules:
    """The hook (gateway/realtime/hooks.py) for device credentials and access announcements."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def _current(self, claims: dict[str, object]) -> bool:
        """Whether a device token's credential is still the device's (not unpaired, not paired again)."""
        try:
            async with self.hub.access.as_caller(claims) as conn:
                row = await (await conn.execute("select private.current_device() is not null")).fetchone()
        except psycopg.Error as exc:
            log.info("device credential check failed: %s", exc)
            return False
        return bool(row and row[0])

    async def refusal(self, claims: dict[str, object]) -> str | None:
        """A device token counts only while its credential is current (docs/security-model.md)."""
        if claims.get("role") == "device" and not await self._current(claims):
            return DEVICE_REVOKED
        return None

    def on_message(self, topic: str, private: bool, event: str) -> None:
        """Close what a voided device credential holds; re-check channels whose reader lost access."""
        if event in ("unpair", "paired") and topic.startswith(DEVICE_TOPIC):
            # Delivered first, so the device hears why, then what holds a voided credential closes.
            self.hub.in_background(self._recheck_device(topic[len(DEVICE_TOPIC) :]))
        if private and event == "changed" and topic.startswith(ACCESS_TOPIC):
            target = topic[len(ACCESS_TOPIC) :]
            self.hub.rechecks.hold(None if target == "all" else target)

    async def _recheck_device(self, device_uuid: str) -> None:
        """Close what is held with a credential of this device that is no longer current (the channels it
        joined, and sockets it opened with its token)."""
        verdicts: dict[str, bool] = {}

        async def refused(claims: dict[str, object]) -> bool:
            if claims.get("role") != "device" or claims.get("sub") != device_uuid:
                return False
            cred = str(claims.get("cred"))
            if cred not in verdicts:
                verdicts[cred] = await self._current(claims)
            return not verdicts[cred]

        await self.hub.rechecks.close_refused(refused, DEVICE_REVOKED)
