"""Tokens as Supabase Realtime verifies them (https://supabase.com/docs/guides/realtime/authorization): the
edge's `EdgeError` kinds (gateway/edge.py) turned into Realtime's codes and messages, and a channel's token
over its life: its expiry timer and the `access_token` message that replaces it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from busymate.gateway.edge import EdgeError, JwtVerifier, check_times
from busymate.gateway.realtime.channel import no_longer_readable

if TYPE_CHECKING:
    from busymate.gateway.realtime.channel import Channel
    from busymate.gateway.realtime.hub import Hub


class RealtimeError(Exception):
    """A join refused with a Realtime code and reason (`str()` gives `Code: reason`)."""

    def __init__(self, code: str, reason: str = "") -> None:
        super().__init__(f"{code}: {reason}" if reason else code)
        self.code = code
        self.reason = reason


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


class ChannelTokens:
    """A joined channel's token: closed when it expires, replaced (and re-checked) by `access_token`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def arm_expiry(self, channel: Channel) -> None:
        """(Re)start the timer that closes the channel when its token expires."""
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
        self.hub.close(channel)

    async def refresh(self, channel: Channel, payload: object) -> None:
        """An `access_token` message: verify the new token, re-check a private channel, move the expiry."""
        hub = self.hub
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            return
        if token.startswith("sb_"):
            claims = channel.socket.claims
        else:
            try:
                claims = token_claims(hub.verifier, token, channel=True)
                await hub.admit(claims)
            except RealtimeError as exc:
                channel.system("system", "error", exc.reason or exc.code)
                hub.close(channel)
                return
        channel.claims = claims
        channel.writes.clear()
        if channel.private:
            channel.read_broadcast, channel.read_presence = await hub.access.can_read(
                claims, channel.sub, channel.socket.headers
            )
            if not (channel.read_broadcast or channel.read_presence):
                channel.system("system", "error", no_longer_readable(channel.sub))
                hub.close(channel)
                return
        self.arm_expiry(channel)
        if channel.bindings and hub.replication is not None:
            await hub.replication.refresh(channel)
