"""The port pool: a listener per paired proxy device of the pool, following the devices table."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mitmproxy import ctx

from busymate.api_core import ApiRefused, NotFound
from busymate.proxy.control import Control
from busymate.proxy.credentials import Credential
from busymate.proxy.device import Device, networks

log = logging.getLogger("busymate.proxy")

DEVICE_COLUMNS = "uuid,name,workspace_id,source,proxy_port,allowed_sources,paired,paired_at"


class Ports(Control):
    """Opens and closes the listeners: which devices have a port, their credentials, a refused one."""

    async def reconcile(self, why: str) -> None:
        """Open and close listeners to match the devices table."""
        async with self._reconcile_lock:
            try:
                rows = await self.as_operator(
                    "GET",
                    "/rest/v1/devices",
                    params={"select": DEVICE_COLUMNS, "source": "eq.proxy", "proxy_port": "not.is.null"},
                )
            except ApiRefused as exc:
                log.warning("could not list devices (%s): ports unchanged", exc.status)
                return
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
        keeping = "keeping the one it has" if self.credentials.get(row["uuid"]) else "its port stays closed"
        try:
            answer: Any = await self.as_operator(
                "POST", "/functions/v1/device-token", json={"device": row["uuid"]}
            )
        except NotFound:
            self.credentials.drop(row["uuid"])  # not the operator's to have (any more)
            return
        except (ApiRefused, ValueError) as exc:  # ValueError: an answer that is not JSON
            status, said = (exc.status, exc.message) if isinstance(exc, ApiRefused) else (200, str(exc))
            log.warning(
                "could not get a token for device %r (%s %s): %s", row["name"], status, said[:200], keeping
            )
            return
        try:
            issued = Credential(
                str(answer["access_token"]),
                row.get("paired_at"),
                int(answer["expires_at"]) - int(answer["expires_in"]),
                int(answer["expires_at"]),
            )
        except (ValueError, TypeError, KeyError):
            log.warning(
                "could not get a token for device %r (200 %s): %s", row["name"], str(answer)[:200], keeping
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
            networks(row["allowed_sources"]),
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
        await self.reconcile(f"{topic} {event}")
