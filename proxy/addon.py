"""The mitmproxy addon: a port per proxy device, the source gate, capture, breakpoints and resend.

Which ports are open follows the devices table: the proxy lists the proxy devices it may see under its
operator's token, opens a listener (`regular@<port>`) for each paired one whose port is in the pool, and
reconciles whenever `devices:all` says a device was added, changed or removed (and every 30 s, and after a
reconnect). A flow belongs to the device whose listener it came through. A connection from an address outside
the device's `allowed_sources` is closed before a byte is proxied. Finished flows are queued for the spool
writer under the device's token, which the backend issued (proxy/credentials.py); a 401 there closes the
device's port until its credential changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from mitmproxy import connection, ctx, http
from mitmproxy.flow import Error
from mitmproxy.proxy import server_hooks

from busymate.errors import BusymateError
from busymate.live import LiveClient
from busymate.proxy import ca
from busymate.proxy.breakpoints import Breakpoints
from busymate.proxy.capture import TAP, BodyTap, entry_row
from busymate.proxy.credentials import Credential, Credentials
from busymate.proxy.spool import Writer
from busymate.proxy.upstream import REFUSED, Upstreams, refuse
from busymate.settings import Settings

log = logging.getLogger("busymate.proxy")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEVICE_COLUMNS = "uuid,name,workspace_id,source,proxy_port,allowed_sources,paired,paired_at"
RECONCILE_EVERY = 30.0
RULES_EVERY = 2.0
PAUSED_EVERY = 1.0  # read back the rows of paused flows, in case a wake-up was lost
RESENDS_EVERY = 5.0  # look for resends nobody woke us for
RESEND_LAPSES = 300.0  # claim_resend_requests hands out requests this young only
TOKEN_EVERY = 600.0
DEFAULT_CAP = 1024 * 1024
STREAM_OVER = 4 * 1024 * 1024  # bodies larger than this (or of unknown length) pass through without buffering
DEVICE = "busymate.device"  # flow.metadata: the device a replayed flow belongs to


@dataclass(frozen=True)
class Device:
    """A proxy device with an open port."""

    uuid: str
    name: str
    workspace_id: str
    port: int
    allowed: tuple[Network, ...]
    credential_id: str  # which pairing its token belongs to: a change lets its spool be written again
    token: str  # issued by /functions/v1/device-token
    paired_at: str | None = None  # which credential this is: a new pairing moves it

    def allows(self, address: str) -> bool:
        """Whether a connection from `address` may use this device's port."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.allowed)


@dataclass(frozen=True)
class ProxyConfig:
    """How the proxy runs."""

    settings: Settings
    ports: range
    listen_host: str = "0.0.0.0"  # noqa: S104 - phones reach it over the LAN; the source gate decides
    breakpoint_timeout: float = 60.0
    flush_interval: float = 0.05


def _networks(values: list[str] | None) -> tuple[Network, ...]:
    nets = []
    for value in values or []:
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(value, strict=False))
    return tuple(nets)


class Busymate:
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
        self.http = httpx.AsyncClient(base_url=self.api_url, timeout=15.0)
        self._tasks: list[asyncio.Task[None]] = []
        self._reconcile_lock = asyncio.Lock()
        self.ready = asyncio.Event()

    # ----------------------------------------------------------------- identities and the API

    async def operator_token(self, fresh: bool = False) -> str:
        """The operator's access token (the CLI's signed-in user or the local admin), refreshed as needed."""
        if fresh or self._token is None or time.monotonic() - self._token[1] > TOKEN_EVERY:
            token = await asyncio.to_thread(self._operator_token)
            self._token = (token, time.monotonic())
        return self._token[0]

    async def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """A call to the stack under `token` (default: the operator's)."""
        bearer = token or await self.operator_token()
        headers = {"apikey": self.anon_key, "authorization": f"Bearer {bearer}", **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)

    def _token_of(self, device_uuid: str) -> str | None:
        dev = self.by_uuid.get(device_uuid)
        return dev.token if dev is not None else None

    # ----------------------------------------------------------------- lifecycle

    async def running(self) -> None:
        """mitmproxy is up: open the ports, start the writer and the control channel."""
        self.upstreams.install(asyncio.get_running_loop())
        ca.ensure_ca(self.settings.state_dir)
        self.writer.start()
        await self._read_cap()
        await self.reconcile("start")
        self.live = LiveClient(self.api_url, self.anon_key, self.operator_token, self._live_state)
        self.live.subscribe("devices:all", self._on_devices)
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
        await self.http.aclose()

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
            response = await self.api("GET", "/rest/v1/settings_global", params={"select": "settings"})
            rows = response.json() if response.status_code == 200 else []
            value = (rows[0].get("settings") or {}).get("body_cap_bytes") if rows else None
            if isinstance(value, int) and value > 0:
                self.cap = value
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("could not read body_cap_bytes (%s): using %d", exc, self.cap)

    async def _read_rules(self) -> None:
        response = await self.api(
            "GET", "/rest/v1/breakpoints", params={"select": "*", "enabled": "is.true", "order": "created_at"}
        )
        if response.status_code == 200:
            self.breakpoints.set_rules(response.json())

    # ----------------------------------------------------------------- the port pool

    async def reconcile(self, why: str) -> None:
        """Open and close listeners to match the devices table."""
        async with self._reconcile_lock:
            response = await self.api(
                "GET",
                "/rest/v1/devices",
                params={"select": DEVICE_COLUMNS, "source": "eq.proxy", "proxy_port": "not.is.null"},
            )
            if response.status_code == 401:
                self._token = None
                response = await self.api(
                    "GET",
                    "/rest/v1/devices",
                    params={"select": DEVICE_COLUMNS, "source": "eq.proxy", "proxy_port": "not.is.null"},
                )
            if response.status_code != 200:
                log.warning("could not list devices (%s): ports unchanged", response.status_code)
                return
            rows = response.json()
            self.credentials.keep_only({str(r["uuid"]) for r in rows})
            for row in rows:
                if self._needs_credential(row):
                    await self._issue(row)
            wanted: dict[int, Device] = {}
            for row in rows:
                device = self._wanted(row)
                if device is not None:
                    wanted[device.port] = device
            await self._apply(wanted, why)
            self._follow_workspaces()

    def _needs_credential(self, row: dict[str, Any]) -> bool:
        """A paired device of the pool whose token the proxy lacks (new, paired again) or should renew."""
        held, version = self.credentials.get(row["uuid"]), row.get("paired_at")
        return (
            bool(row.get("paired"))
            and int(row["proxy_port"]) in self.config.ports
            and not (row["uuid"] in self.refused and self.refused[row["uuid"]] == version)
            and (held is None or held.paired_at != version or held.due())
        )

    async def _issue(self, row: dict[str, Any]) -> None:
        """Ask the backend for this device's token under the operator's token (owners and admins get one)."""
        response = await self.api("POST", "/functions/v1/device-token", json={"device": row["uuid"]})
        if response.status_code == 401:
            self._token = None
            response = await self.api("POST", "/functions/v1/device-token", json={"device": row["uuid"]})
        if response.status_code == 404:
            self.credentials.drop(row["uuid"])  # not the operator's to have (any more)
            return
        try:
            answer: Any = response.json() if response.status_code == 200 else {}
            issued = Credential(
                str(answer["access_token"]),
                row.get("paired_at"),
                int(answer["expires_at"]) - int(answer["expires_in"]),
                int(answer["expires_at"]),
            )
        except (ValueError, TypeError, KeyError):
            log.warning(
                "could not get a token for device %r (%s %s): %s",
                row["name"],
                response.status_code,
                response.text[:200],
                "keeping the one it has" if self.credentials.get(row["uuid"]) else "its port stays closed",
            )
            return
        self.credentials.put(row["uuid"], issued)

    def _wanted(self, row: dict[str, Any]) -> Device | None:
        port, name, version = int(row["proxy_port"]), row["name"], row.get("paired_at")
        if port not in self.config.ports:
            if (row["uuid"], port) not in self.warned:
                self.warned.add((row["uuid"], port))
                log.warning(
                    "device %r asks for port %d, which is not in the pool %d-%d: not opened",
                    name,
                    port,
                    self.config.ports.start,
                    self.config.ports.stop - 1,
                )
            return None
        if not row.get("paired"):
            return None
        if row["uuid"] in self.refused and self.refused[row["uuid"]] == version:
            return None
        self.refused.pop(row["uuid"], None)
        held = self.credentials.get(row["uuid"])
        if held is not None and held.paired_at == version and not held.expired():
            cred, token = str(version), held.token
        else:
            if row["uuid"] not in self.no_credential:
                self.no_credential.add(row["uuid"])
                log.warning(
                    "device %r: only its owner or an admin may have its credential, and the proxy runs as "
                    "neither: port %d not opened",
                    name,
                    port,
                )
            return None
        self.no_credential.discard(row["uuid"])
        return Device(
            row["uuid"],
            name,
            row["workspace_id"],
            port,
            _networks(row["allowed_sources"]),
            cred,
            token,
            version,
        )

    async def _apply(self, wanted: dict[int, Device], why: str) -> None:
        before = self.by_port
        known = {d.uuid: d for d in before.values()}
        for port, dev in sorted(wanted.items()):
            if port not in before or before[port].uuid != dev.uuid:
                allowed = ", ".join(str(n) for n in dev.allowed) or "nowhere"
                log.info("opening port %d for device %r (allowed from %s)", port, dev.name, allowed)
            if dev.uuid not in known or known[dev.uuid].credential_id != dev.credential_id:
                self.writer.resume(dev.uuid)  # a new credential: what waits in its spool can be written
        for port, dev in sorted(before.items()):
            if port not in wanted or wanted[port].uuid != dev.uuid:
                why_closed = (
                    "its credential was refused" if why == "401" else f"{why}: removed, unpaired or moved"
                )
                log.info("closing port %d of device %r (%s)", port, dev.name, why_closed)
        self.by_port = dict(wanted)
        self.by_uuid = {d.uuid: d for d in wanted.values()}
        modes = [f"regular@{port}" for port in sorted(wanted)]
        if list(ctx.options.mode) != modes:
            ctx.options.update(mode=modes)
            await self._settle(set(wanted))
        if self._on_ports is not None:
            self._on_ports({p: {"uuid": d.uuid, "name": d.name} for p, d in wanted.items()})

    async def _settle(self, ports: set[int]) -> None:
        """Wait (briefly) until the listeners match `ports`."""
        proxyserver = ctx.master.addons.get("proxyserver")
        for _ in range(100):
            if not proxyserver.servers.is_updating:
                live = {s.mode.custom_listen_port for s in proxyserver.servers if s.is_running}
                if live == ports:
                    return
            await asyncio.sleep(0.02)

    def _refused(self, device_uuid: str, reason: str) -> None:
        dev = self.by_uuid.get(device_uuid)
        if dev is None:
            return
        self.refused[device_uuid] = dev.paired_at
        self.credentials.drop(device_uuid)
        log.error(
            "the API refused the credential of device %r (%s): closing port %d; its captured flows wait in "
            "the spool until it is paired again",
            dev.name,
            reason,
            dev.port,
        )
        wanted = {p: d for p, d in self.by_port.items() if d.uuid != device_uuid}
        asyncio.get_running_loop().create_task(self._apply(wanted, "401"))

    async def _on_devices(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        await self.reconcile(f"devices:all {event}")

    # ----------------------------------------------------------------- control messages

    def _follow_workspaces(self) -> None:
        """Listen on proxy-control:<workspace> of each workspace this proxy serves a device in."""
        if self.live is None:
            return
        for workspace_id in sorted({d.workspace_id for d in self.by_uuid.values()}):
            topic = f"proxy-control:{workspace_id}"
            if topic not in self.control_topics:
                self.control_topics.add(topic)
                self.live.subscribe(topic, self._on_control)

    async def _on_control(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        """A wake-up: read what the database recorded. Nothing in the message itself is acted on."""
        workspace_id = topic.removeprefix("proxy-control:")
        if event == "breakpoint-continue":
            event_id = str(payload.get("event_id"))
            if event_id in self.breakpoints.paused:
                await self.breakpoints.check([event_id])
        elif event == "resend-request":
            await self._claim_resends([d for d in self.by_uuid.values() if d.workspace_id == workspace_id])

    async def _check_paused(self) -> None:
        await self.breakpoints.check()

    async def _read_resolved(self, device_uuid: str, event_ids: list[str]) -> list[dict[str, Any]]:
        """The resolved rows among these paused flows of a device, read under the device's own token."""
        dev = self.by_uuid.get(device_uuid)
        if dev is None:
            return []
        response = await self.api(
            "GET",
            "/rest/v1/breakpoint_events",
            token=dev.token,
            params={
                "select": "id,active,outcome,edits",
                "id": f"in.({','.join(event_ids)})",
                "active": "is.false",
            },
        )
        rows: list[dict[str, Any]] = response.json() if response.status_code == 200 else []
        return rows

    async def _poll_resends(self) -> None:
        """Claim the resends whose wake-up never came (one small read when there are none)."""
        since = datetime.now(UTC) - timedelta(seconds=RESEND_LAPSES)
        response = await self.api(
            "GET",
            "/rest/v1/resend_requests",
            params={
                "select": "device_uuid",
                "claimed_at": "is.null",
                "requested_at": f"gt.{since.isoformat()}",
            },
        )
        if response.status_code == 200:
            pending = {str(r["device_uuid"]) for r in response.json()}
            await self._claim_resends([d for d in self.by_uuid.values() if d.uuid in pending])

    async def _claim_resends(self, devices: list[Device]) -> None:
        """Each device claims its pending resends (once: the database hands each to one claim only)."""
        for dev in devices:
            response = await self.api("POST", "/rest/v1/rpc/claim_resend_requests", token=dev.token, json={})
            if response.status_code != 200:
                log.warning("could not claim the resends of device %r (%s)", dev.name, response.status_code)
                continue
            for row in response.json():
                self.resend(dev, row)

    def resend(self, device: Device, row: dict[str, Any]) -> None:
        """Replay a stored request, as claim_resend_requests handed it over, through its device; the new flow
        is captured like any other."""
        scheme = {"wss": "https", "ws": "http"}.get(row["scheme"], row["scheme"])
        port = f":{row['port']}" if row.get("port") else ""
        url = f"{scheme}://{row['host']}{port}{row['path']}" + (
            f"?{row['query']}" if row.get("query") else ""
        )
        body = bytes.fromhex(row["request_body"][2:]) if row.get("request_body") else b""
        headers = [(str(k).encode(), str(v).encode()) for k, v in row.get("request_headers") or []]
        client = connection.Client(
            peername=("127.0.0.1", 0), sockname=("127.0.0.1", device.port), timestamp_start=time.time()
        )
        flow = http.HTTPFlow(client, connection.Server(address=None))
        request = http.Request.make(row["method"], url, body, http.Headers(headers))
        if "host" not in request.headers:  # captured over HTTP/2, which names the host in :authority
            request.headers.insert(0, "host", request.host_header or request.authority or request.host)
        flow.request = request
        flow.metadata[DEVICE] = device.uuid
        flow.metadata["busymate.resend_of"] = str(row["entry_id"])
        ctx.master.commands.call("replay.client", [flow])
        log.info("resending entry %s through device %r", row["entry_id"], device.name)

    async def _record_pause(self, device_uuid: str, event: dict[str, Any]) -> bool:
        dev = self.by_uuid.get(device_uuid)
        if dev is None:
            return False
        response = await self.api(
            "POST",
            "/rest/v1/breakpoint_events",
            token=dev.token,
            json=event,
            headers={"prefer": "return=minimal"},
        )
        if response.status_code >= 300:
            log.warning("breakpoint event refused: %s %s", response.status_code, response.text[:200])
        return response.status_code < 300

    async def _time_out(self, device_uuid: str, event_id: str) -> None:
        dev = self.by_uuid.get(device_uuid)
        if dev is None:
            return
        await self.api(
            "PATCH",
            "/rest/v1/breakpoint_events",
            token=dev.token,
            params={"id": f"eq.{event_id}", "active": "is.true"},
            json={"active": False, "outcome": "timed_out", "resolved_at": "now()"},
            headers={"prefer": "return=minimal"},
        )

    # ----------------------------------------------------------------- mitmproxy hooks

    def client_connected(self, client: connection.Client) -> None:
        """The source gate: only the device's allowed addresses may use its port."""
        port = client.sockname[1] if client.sockname else None
        dev = self.by_port.get(port) if port is not None else None
        peer = str(client.peername[0]) if client.peername else "?"
        if dev is None:
            client.error = f"port {port} has no device"
            log.warning("refused %s on port %s: no paired device has this port", peer, port)
        elif not dev.allows(peer):
            client.error = f"{peer} is not allowed for device {dev.name}"
            log.warning(
                "refused %s on port %d: not in the allowed sources of device %r (%s)",
                peer,
                dev.port,
                dev.name,
                ", ".join(str(n) for n in dev.allowed) or "none",
            )

    def device_of(self, flow: http.HTTPFlow) -> Device | None:
        """The device a flow belongs to: the listener it came through (or the one a resend names)."""
        if DEVICE in flow.metadata:
            return self.by_uuid.get(flow.metadata[DEVICE])
        sockname = flow.client_conn.sockname
        return self.by_port.get(sockname[1]) if sockname else None

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Refuse an upstream never reached; large uploads pass through (their first `cap` bytes kept)."""
        if await self._refused_upstream(flow, self.device_of(flow)):
            return
        length = flow.request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > STREAM_OVER:
            tap = BodyTap(self.cap)
            flow.metadata[TAP + ".req"] = tap
            flow.request.stream = tap

    async def request(self, flow: http.HTTPFlow) -> None:
        """Answer the CA host ourselves; refuse flows of a closed device; pause at request breakpoints."""
        if flow.request.host == ca.CA_HOST:  # the absolute-form URL of a plain-HTTP proxy request
            status, kind, body = ca.download(self.settings.state_dir, flow.request.path)
            flow.response = http.Response.make(
                status, body, {"content-type": kind, "cache-control": "no-store"}
            )
            flow.metadata["busymate.skip"] = True
            return
        dev = self.device_of(flow)
        if dev is None:
            flow.response = http.Response.make(
                403,
                b"busymate: this device's port is closed (removed or unpaired)\n",
                {"content-type": "text/plain"},
            )
            flow.metadata["busymate.skip"] = True
            return
        if REFUSED in flow.metadata:
            return
        rule = self.breakpoints.match(dev.workspace_id, dev.uuid, "request", flow)
        if rule is not None:
            await self.breakpoints.pause(flow, dev.workspace_id, dev.uuid, rule, "request")
            if flow.live and flow.response is None:  # an edit may have changed where it goes
                await self._refused_upstream(flow, dev)

    async def _refused_upstream(self, flow: http.HTTPFlow, dev: Device | None) -> bool:
        """Answer 403 (captured with its error) when the flow's upstream is one the proxy never reaches."""
        if REFUSED in flow.metadata:
            return True
        refusal = await self.upstreams.check(flow.request.host, flow.request.port)
        if refusal is None:
            return False
        refuse(flow, refusal)
        peer = flow.client_conn.peername[0] if flow.client_conn.peername else "?"
        who = f"device {dev.name!r}" if dev is not None else "a closed port"
        log.warning(
            "refused %s %s from %s (%s): %s", flow.request.method, refusal.where, peer, who, refusal.reason
        )
        return True

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Stream server-sent events and large or open-ended bodies, keeping their first `cap` bytes."""
        res = flow.response
        if res is None or flow.metadata.get("busymate.skip"):
            return
        kind = res.headers.get("content-type", "")
        length = res.headers.get("content-length")
        big = length is not None and length.isdigit() and int(length) > STREAM_OVER
        if kind.startswith("text/event-stream") or big:
            tap = BodyTap(self.cap)
            flow.metadata[TAP + ".res"] = tap
            res.stream = tap

    async def response(self, flow: http.HTTPFlow) -> None:
        """Pause at response breakpoints, then capture (WebSockets are captured when they end)."""
        if flow.metadata.get("busymate.skip"):
            return
        dev = self.device_of(flow)
        if dev is None:
            return
        if TAP + ".res" not in flow.metadata and REFUSED not in flow.metadata:
            rule = self.breakpoints.match(dev.workspace_id, dev.uuid, "response", flow)
            if rule is not None:
                await self.breakpoints.pause(flow, dev.workspace_id, dev.uuid, rule, "response")
        if flow.websocket is None:
            self._capture(flow, dev)

    def error(self, flow: http.HTTPFlow) -> None:
        """A flow that failed (refused upstream, aborted at a breakpoint, cut off) is captured too."""
        if flow.metadata.get("busymate.skip") or flow.metadata.get("busymate.captured"):
            return
        dev = self.device_of(flow)
        if dev is not None and flow.request is not None:
            self._capture(flow, dev)

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        """A CONNECT to an upstream the proxy never reaches gets a 403 (http_connect_error captures it)."""
        await self._refused_upstream(flow, self.device_of(flow))

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Every upstream connection is checked, whatever opened it (a resend, an edited URL, an upload)."""
        if data.server.address is not None:
            refusal = self.upstreams.connecting(str(data.server.address[0]), int(data.server.address[1]))
            if refusal is not None:
                log.warning("%s (when connecting)", refusal)
                data.server.error = str(refusal)

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        """A CONNECT that failed (the server is unreachable, say) is captured with its error."""
        dev = self.device_of(flow)
        if dev is not None and not flow.metadata.get("busymate.captured"):
            if flow.error is None:
                said = flow.response.get_text(strict=False) if flow.response is not None else None
                flow.error = Error(f"CONNECT failed: {(said or 'no answer').strip()[:500]}")
            self._capture(flow, dev)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        """A WebSocket is one entry: the handshake with the messages as its response body."""
        dev = self.device_of(flow)
        if dev is not None:
            self._capture(flow, dev)

    def _capture(self, flow: http.HTTPFlow, dev: Device) -> None:
        if flow.metadata.get("busymate.captured"):
            return
        flow.metadata["busymate.captured"] = True
        row, size = entry_row(flow, self.cap)
        self.writer.put(dev.uuid, row, size)
