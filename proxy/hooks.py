"""The mitmproxy hooks: the source gate, the CA download, refused upstreams, streaming, and capture."""

from __future__ import annotations

import logging

from mitmproxy import connection, http
from mitmproxy.flow import Error
from mitmproxy.proxy import server_hooks

from busymate.proxy import ca
from busymate.proxy.capture import TAP, BodyTap, entry_row
from busymate.proxy.core import AddonCore
from busymate.proxy.device import DEVICE, Device
from busymate.proxy.upstream import REFUSED, refuse

log = logging.getLogger("busymate.proxy")

STREAM_OVER = 4 * 1024 * 1024  # bodies larger than this (or of unknown length) pass through without buffering


class Hooks(AddonCore):
    """What mitmproxy calls for each connection and flow."""

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
