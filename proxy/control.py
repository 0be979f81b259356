"""Control messages: wake-ups on proxy-control:<workspace>, breakpoint rows, and resends."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from mitmproxy import connection, ctx, http

from busymate.api_core import ApiRefused
from busymate.proxy.core import AddonCore
from busymate.proxy.device import DEVICE, Device

log = logging.getLogger("busymate.proxy")

RESEND_LAPSES = 300.0  # claim_resend_requests hands out requests this young only


class Control(AddonCore):
    """Acts on what the database recorded when a wake-up (or a poll) says to look."""

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
        try:
            rows: list[dict[str, Any]] = await self.api(
                "GET",
                "/rest/v1/breakpoint_events",
                token=dev.token,
                params={
                    "select": "id,active,outcome,edits",
                    "id": f"in.({','.join(event_ids)})",
                    "active": "is.false",
                },
            )
        except ApiRefused:
            return []
        return rows

    async def _poll_resends(self) -> None:
        """Claim the resends whose wake-up never came (one small read when there are none)."""
        since = datetime.now(UTC) - timedelta(seconds=RESEND_LAPSES)
        try:
            rows = await self.api(
                "GET",
                "/rest/v1/resend_requests",
                params={
                    "select": "device_uuid",
                    "claimed_at": "is.null",
                    "requested_at": f"gt.{since.isoformat()}",
                },
            )
        except ApiRefused:
            return
        pending = {str(r["device_uuid"]) for r in rows}
        await self._claim_resends([d for d in self.by_uuid.values() if d.uuid in pending])

    async def _claim_resends(self, devices: list[Device]) -> None:
        """Each device claims its pending resends (once: the database hands each to one claim only)."""
        for dev in devices:
            try:
                rows = await self.api("POST", "/rest/v1/rpc/claim_resend_requests", token=dev.token, json={})
            except ApiRefused as exc:
                log.warning("could not claim the resends of device %r (%s)", dev.name, exc.status)
                continue
            for row in rows:
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
        try:
            await self.api(
                "POST",
                "/rest/v1/breakpoint_events",
                token=dev.token,
                json=event,
                extra={"prefer": "return=minimal"},
            )
        except ApiRefused as exc:
            log.warning("breakpoint event refused: %s %s", exc.status, exc.message[:200])
            return False
        return True

    async def _time_out(self, device_uuid: str, event_id: str) -> None:
        dev = self.by_uuid.get(device_uuid)
        if dev is None:
            return
        with contextlib.suppress(ApiRefused):  # a row resolved meanwhile, a token voided: nothing to time out
            await self.api(
                "PATCH",
                "/rest/v1/breakpoint_events",
                token=dev.token,
                params={"id": f"eq.{event_id}", "active": "is.true"},
                json={"active": False, "outcome": "timed_out", "resolved_at": "now()"},
                extra={"prefer": "return=minimal"},
            )
