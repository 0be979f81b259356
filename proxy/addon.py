"""The mitmproxy addon: a port per proxy device, the source gate, capture, breakpoints and resend.

Which ports are open follows the devices table: the proxy lists the proxy devices it may see under its
operator's token, opens a listener (`regular@<port>`) for each paired one whose port is in the pool, and
reconciles whenever `devices:all` (an admin operator) or `devices:<workspace_id>` says a device was added,
changed or removed (and every 30 s, and after a reconnect). A flow belongs to the device whose listener it
came through. A connection from an address outside the device's `allowed_sources` is closed before a byte
is proxied. Finished flows are queued for the spool writer under the device's token, which the backend
issued (proxy/credentials.py); a 401 there closes the device's port until its credential changes.

The addon's parts: the port pool (proxy/ports.py), control messages (proxy/control.py), the mitmproxy
hooks (proxy/hooks.py), the shared state and API calls (proxy/core.py); this module builds them and runs
their background jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from busymate.api_client import AsyncApi
from busymate.api_core import ApiRefused, ApiUnreachable
from busymate.errors import BusymateError
from busymate.live import LiveClient
from busymate.proxy import ca
from busymate.proxy.breakpoints import Breakpoints
from busymate.proxy.core import TOKEN_EVERY
from busymate.proxy.credentials import Credentials
from busymate.proxy.device import Device, ProxyConfig
from busymate.proxy.hooks import Hooks
from busymate.proxy.ports import Ports
from busymate.proxy.spool import Writer
from busymate.proxy.upstream import Upstreams

log = logging.getLogger("busymate.proxy")

RECONCILE_EVERY = 30.0
RULES_EVERY = 2.0
PAUSED_EVERY = 1.0  # read back the rows of paused flows, in case a wake-up was lost
RESENDS_EVERY = 5.0  # look for resends nobody woke us for
DEFAULT_CAP = 1024 * 1024

__all__ = ["Busymate", "ProxyConfig"]


class Busymate(Hooks, Ports):
    """The addon (one instance per proxy process)."""

    def __init__(
        self,
        config: ProxyConfig,
        operator_token: Callable[[], str],
        on_ports: Callable[[dict[int, dict[str, str]]], None] | None = None,
    ) -> None:
        self.config = config
        self._on_ports = on_ports
        self.settings = config.settings
        self.api_url = self.settings.url or self.settings.api_url
        self.anon_key = self.settings.anon_key or self.settings.publishable_key  # never derived from a secret
        self._operator_token = operator_token  # () -> str (blocking; run in a thread)
        self.credentials = Credentials(ca.confdir(self.settings.state_dir))
        self._token: tuple[str, float] | None = None
        self.by_port: dict[int, Device] = {}
        self.by_uuid: dict[str, Device] = {}
        self.refused: dict[str, str | None] = {}  # device uuid -> the credential the API refused
        self.warned: set[tuple[str, int]] = set()
        self.cap = DEFAULT_CAP
        self.writer = Writer(
            self.settings.state_dir / "proxy" / "spool",
            self.api_url,
            self.anon_key,
            self._token_of,
            self._refused,
            interval=config.flush_interval,
        )
        self.breakpoints = Breakpoints(
            self._record_pause, self._time_out, config.breakpoint_timeout, self._read_resolved
        )
        self.control_topics: set[str] = set()  # proxy-control:<workspace> joined so far
        self.no_credential: set[str] = set()  # devices whose credential the operator may not have (said once)
        self.upstreams = Upstreams.for_proxy(self.settings, config.ports)
        self.live: LiveClient | None = None
        self.client = AsyncApi(self.api_url, self.anon_key, self.operator_token, timeout=15.0)
        self._tasks: list[asyncio.Task[None]] = []
        self._reconcile_lock = asyncio.Lock()
        self.ready = asyncio.Event()

    async def running(self) -> None:
        """mitmproxy is up: open the ports, start the writer and the control channel."""
        self.upstreams.install(asyncio.get_running_loop())
        ca.ensure_ca(self.settings.state_dir)
        self.writer.start()
        await self._read_cap()
        await self.reconcile("start")
        self.live = LiveClient(self.api_url, self.anon_key, self.operator_token, self._live_state)
        for topic in await self._device_topics():
            self.live.subscribe(topic, self._on_devices)
        try:
            await self.live.start()
        except (TimeoutError, OSError, BusymateError) as exc:
            log.warning("no live control channel yet (%s): retrying in the background", exc)
        self._follow_workspaces()  # after the first join: a workspace topic refused must not stop the start
        self._tasks = [
            asyncio.create_task(self._every(RECONCILE_EVERY, self._reconcile_periodically)),
            asyncio.create_task(self._every(RULES_EVERY, self._read_rules)),
            asyncio.create_task(self._every(TOKEN_EVERY, self._refresh_live_token)),
            asyncio.create_task(self._every(PAUSED_EVERY, self._check_paused)),
            asyncio.create_task(self._every(RESENDS_EVERY, self._poll_resends)),
        ]
        await self._read_rules()
        self.ready.set()
        ports = ", ".join(f"{p} ({d.name})" for p, d in sorted(self.by_port.items())) or "none yet"
        log.info("busymate proxy ready: ports %s; CA %s", ports, ca.cert_path(self.settings.state_dir))

    async def _device_topics(self) -> list[str]:
        """Where device changes reach this operator: devices:all for an admin (every workspace), otherwise
        devices:<workspace_id> of each workspace they belong to (a workspace joined later is found by the
        periodic reconcile). Unknown (the API did not answer): devices:all, as an admin operator needs."""
        try:
            me = await self.client.rpc("whoami", {})
        except BusymateError as exc:
            log.warning("could not ask who the operator is (%s): following devices:all", exc)
            return ["devices:all"]
        if not isinstance(me, dict) or me.get("grants_all"):
            return ["devices:all"]
        return [f"devices:{w}" for w in sorted(str(w) for w in me.get("workspaces") or [])]

    async def done(self) -> None:
        """mitmproxy stops: release paused flows, flush the queue (what cannot be written stays spooled)."""
        for task in self._tasks:
            task.cancel()
        for paused in list(self.breakpoints.paused.values()):
            paused.flow.resume()
        if self.live is not None:
            await self.live.close()
        await self.writer.stop()
        left = self.writer.pending_segments()
        if left:
            log.warning("%d segment(s) stay in the spool; the next `busymate proxy run` writes them", left)
        await self.client.aclose()

    async def _every(self, seconds: float, job: Any) -> None:
        failing = False
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception as exc:  # the next round tries again; say so once, not every round
                if not failing:
                    log.warning(
                        "%s failed (%s: %s); retrying every %.0f s",
                        job.__name__,
                        type(exc).__name__,
                        exc,
                        seconds,
                    )
                failing = True
            else:
                if failing:
                    log.info("%s works again", job.__name__)
                failing = False

    async def _reconcile_periodically(self) -> None:
        await self.reconcile("periodic")

    async def _refresh_live_token(self) -> None:
        if self.live is not None:
            await self.live.set_token(await self.operator_token(fresh=True))

    async def _live_state(self, state: str, detail: str) -> None:
        if state == "rejoined":
            log.info("control channel back: reconciling devices")
            await self.reconcile("reconnect")
            await self._read_rules()
            await self._check_paused()  # wake-ups sent while we were away
            await self._poll_resends()
        elif state in ("disconnected", "refused"):
            log.warning("control channel %s: %s", state, detail)
            if state == "refused":
                self._token = None

    async def _read_cap(self) -> None:
        try:
            rows = await self.api("GET", "/rest/v1/settings_global", params={"select": "settings"})
        except ApiRefused:
            rows = []
        except (ApiUnreachable, ValueError) as exc:
            log.warning("could not read body_cap_bytes (%s): using %d", exc, self.cap)
            return
        value = (rows[0].get("settings") or {}).get("body_cap_bytes") if rows else None
        if isinstance(value, int) and value > 0:
            self.cap = value

    async def _read_rules(self) -> None:
        try:
            rules = await self.api(
                "GET",
                "/rest/v1/breakpoints",
                params={"select": "*", "enabled": "is.true", "order": "created_at"},
            )
        except ApiRefused:
            return
        self.breakpoints.set_rules(rules)
