"""Per-address limits on sign-in, sign-up and pairing attempts: a token bucket per (what, address)."""

from __future__ import annotations

import time

from busymate.gateway.auth.errors import AuthError

WINDOW = 300.0  # seconds: N attempts per 5 minutes, refilled continuously
MAX_TRACKED = 10_000


class RateLimiter:
    """`limit` attempts per address per WINDOW; the oldest addresses are forgotten past MAX_TRACKED."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, address: str) -> None:
        """Count one attempt from `address`; AuthError 429 over_request_rate_limit when none is left."""
        now = time.monotonic()
        tokens, stamp = self._buckets.pop(address, (float(self.limit), now))
        tokens = min(float(self.limit), tokens + (now - stamp) * self.limit / WINDOW)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            retry = int((1.0 - tokens) * WINDOW / self.limit) + 1
            raise AuthError(
                429,
                "over_request_rate_limit",
                f"Request rate limit reached: try again in {retry} seconds",
                headers={"retry-after": str(retry)},
            )
        self._buckets[address] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_TRACKED:
            self._buckets.pop(next(iter(self._buckets)))
