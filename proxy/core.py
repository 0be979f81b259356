"""The addon's shared state, and its calls to the API under the operator's or a device's token.

Every call goes through one AsyncApi (busymate/api_client.py: the URL, the anon key, the operator's token as
its token source; a device's calls name that device's token) and its one error mapping (busymate/api_core.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from busymate.api_client import AsyncApi
from busymate.api_core import Unauthorized
from busymate.live import LiveClient
from busymate.proxy.breakpoints import Breakpoints
from busymate.proxy.credentials import Credentials
from busymate.proxy.device import Device, ProxyConfig
from busymate.proxy.spool import Writer
from busymate.proxy.upstream import Upstreams
from busymate.settings import Settings

TOKEN_EVERY = 600.0


class AddonCore:
    """What the addon's parts (ports, control, hooks) share; `Busymate.__init__` sets it."""

    config: ProxyConfig
    settings: Settings
    api_url: str
    anon_key: str
    credentials: Credentials
    by_port: dict[int, Device]
    by_uuid: dict[str, Device]
    refused: dict[str, str | None]  # device uuid -> the credential the API refused
    warned: set[tuple[str, int]]
    cap: int
    writer: Writer
    breakpoints: Breakpoints
    control_topics: set[str]  # proxy-control:<workspace> joined so far
    no_credential: set[str]  # devices whose credential the operator may not have (said once)
    upstreams: Upstreams
    live: LiveClient | None
    client: AsyncApi  # under the operator's token unless a call names a device's
    ready: asyncio.Event
    _on_ports: Callable[[dict[int, dict[str, str]]], None] | None
    _operator_token: Callable[[], str]  # () -> str (blocking; run in a thread)
    _token: tuple[str, float] | None
    _reconcile_lock: asyncio.Lock

    async def operator_token(self, fresh: bool = False) -> str:
        """The operator's access token (the CLI's signed-in user or the local admin), refreshed as needed."""
        if fresh or self._token is None or time.monotonic() - self._token[1] > TOKEN_EVERY:
            token = await asyncio.to_thread(self._operator_token)
            self._token = (token, time.monotonic())
        return self._token[0]

    async def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        """A call to the API under `token` (default: the operator's): its JSON, or ApiRefused / ApiUnreachable
        (busymate.api_core). `kwargs` are AsyncApi.request's: json, params, extra (headers)."""
        return await self.client.request(method, path, token=token, **kwargs)

    async def as_operator(self, method: str, path: str, **kwargs: Any) -> Any:
        """api() under the operator's token, with a fresh one once when that token is refused (401)."""
        try:
            return await self.api(method, path, **kwargs)
        except Unauthorized:
            self._token = None
            return await self.api(method, path, **kwargs)

    def _token_of(self, device_uuid: str) -> str | None:
        dev = self.by_uuid.get(device_uuid)
        return dev.token if dev is not None else None
