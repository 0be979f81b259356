"""The device side of the device contract (docs/devices.md): pair, keep the credential, heartbeat, report
status, read effective settings, and hand every `device:<uuid>` event to a callback.

This is the reference implementation of what a capture client does (bmc, `busymate devices simulate`, and the
iOS app in spirit): it is configured with nothing but the API's URL, its publishable key and the device's own
credential, talks to `/functions/v1/pair`, `/rest/v1` (device_status, effective_settings) and `/realtime/v1`
(`device:<uuid>` and `settings:global`, through busymate.live), and never holds a secret beyond its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from busymate.api_client import AsyncApi
from busymate.api_core import ApiRefused, ApiUnreachable, Unauthorized
from busymate.errors import BusymateError
from busymate.live import JoinRefused, LiveClient

log = logging.getLogger("busymate.device")

STATUS_FIELDS = frozenset({"online", "vpn_state", "heartbeat_at", "ip", "ip_country"})
"""The device_status columns a device may write (the `device` role's column grants)."""
VPN_STATES = frozenset({"unknown", "on", "off", "requested-on", "requested-off"})
PAC_PATH = "/functions/v1/pac/{uuid}"
OFFLINE_TIMEOUT = 5.0  # seconds `close()` tries to write online=false
EXPIRY_WARNING = 30 * 86_400  # warn this long before the token runs out: only a new pairing renews it


class DeviceUnpaired(BusymateError):
    """The device's credential no longer counts (unpaired, paired again, deleted, expired): pair again."""


@dataclass
class DeviceCredential:
    """What pairing leaves a device with, kept as JSON (mode 0600) by save_credential."""

    url: str
    anon_key: str
    device_uuid: str
    workspace_id: str
    name: str
    source: str
    access_token: str
    expires_at: int
    proxy_port: int | None = None
    paired_at: int = 0
    path: Path | None = field(default=None, compare=False, repr=False)
    """Where the credential was loaded from or saved to (not stored): what `unpair` forgets."""

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        stored = asdict(self)
        stored.pop("path")
        return stored

    @classmethod
    def from_json(cls, data: object, path: Path | None = None) -> DeviceCredential:
        """A credential from its stored form; BusymateError naming what is missing."""
        where = f" in {path}" if path else ""
        if not isinstance(data, dict):
            raise BusymateError(f"the device credential{where} is not a JSON object: pair again")
        known = {f.name for f in fields(cls)} - {"path"}
        missing = [
            f.name
            for f in fields(cls)
            if f.name in known and f.name not in data and f.name not in ("proxy_port", "paired_at")
        ]
        if missing:
            raise BusymateError(f"the device credential{where} lacks {', '.join(missing)}: pair again")
        values = {k: v for k, v in data.items() if k in known}
        return cls(**values, path=path)

    def expires_in(self, now: float | None = None) -> float:
        """Seconds until the token runs out (negative once it has)."""
        return self.expires_at - (time.time() if now is None else now)


def load_credential(path: Path | str) -> DeviceCredential | None:
    """The credential kept at `path`, or None when there is none (never paired, or unpaired)."""
    file = Path(path)
    try:
        text = file.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BusymateError(f"cannot read the device credential {file}: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BusymateError(f"the device credential {file} is not JSON ({exc}): pair again") from exc
    return DeviceCredential.from_json(data, file)


def save_credential(path: Path | str, cred: DeviceCredential) -> None:
    """Write the credential to `path`, mode 0600 from its first byte, atomically (its folder made 0700)."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(cred.to_json(), out, indent=2)
            out.write("\n")
        os.chmod(temp, 0o600)
        os.replace(temp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    cred.path = file


def forget_credential(path: Path | str) -> None:
    """Delete the credential at `path` (nothing to do when it is gone)."""
    Path(path).unlink(missing_ok=True)


async def pair(url: str, anon_key: str, code: str, *, info: dict[str, str] | None = None) -> DeviceCredential:
    """Exchange a one-time activation code for the device's credential (POST /functions/v1/pair).

    `info` (model, os, app_build, ...) is sent along for the server's logs; nothing stores it yet. Raises
    ApiRefused (400 `invalid_code` for a wrong, used or expired code, 429 when too many attempts came from
    this address) or ApiUnreachable.
    """
    body: dict[str, object] = {"code": code.strip()}
    if info:
        body["info"] = dict(info)
    async with AsyncApi(url, anon_key) as api:
        answer = await api.request("POST", "/functions/v1/pair", json=body)
    if not isinstance(answer, dict) or not isinstance(answer.get("device"), dict):
        raise BusymateError(f"the pairing answer from {url} is not a device credential: {answer!r}")
    device = answer["device"]
    port = device.get("proxy_port")
    return DeviceCredential(
        url=url.rstrip("/"),
        anon_key=anon_key,
        device_uuid=str(device["uuid"]),
        workspace_id=str(device["workspace_id"]),
        name=str(device["name"]),
        source=str(device["source"]),
        access_token=str(answer["access_token"]),
        expires_at=int(answer["expires_at"]),
        proxy_port=int(port) if isinstance(port, int) else None,
        paired_at=int(time.time()),
    )


type Callback = Callable[..., Awaitable[Any] | Any]


async def _call(fn: Callback | None, *args: Any) -> Any:
    if fn is None:
        return None
    result = fn(*args)
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        return await result
    return result


@dataclass
class DeviceHandlers:
    """What the device does on each event; every callback is optional and may be plain or async.

    - `on_unpair()`: the credential is already forgotten; go back to the activation gate.
    - `on_vpn(on)`: `vpn-on` / `vpn-off`; report `vpn_state` once the tunnel really is up or down.
    - `on_open_sheet(sheet, payload)`: `open-sheet`; the payload plus `open` (default true), `pac_url` (pac).
    - `on_live_activity_message(text)`: the lock-screen text (None clears it).
    - `on_cdp_command(id, method, params, session_id) -> dict`: the result; raise to answer `ok: false` (an
      exception's `code` attribute, if any, goes with its message). Without it every command is refused.
    - `on_settings(settings)`: the effective settings, at start and whenever they change.
    - `on_event(event, payload)`: every `device:<uuid>` event as it came, before its own callback.
    - `on_state(state, detail)`: the Realtime connection (`joined`, `rejoined`, `disconnected`, `refused`).
    """

    on_unpair: Callback | None = None
    on_vpn: Callback | None = None
    on_open_sheet: Callback | None = None
    on_live_activity_message: Callback | None = None
    on_cdp_command: Callback | None = None
    on_settings: Callback | None = None
    on_event: Callback | None = None
    on_state: Callback | None = None


class DeviceClient:
    """One paired device, online from `start()` until `close()` (or until it is unpaired)."""

    def __init__(
        self,
        credential: DeviceCredential,
        handlers: DeviceHandlers,
        *,
        heartbeat_every: float = 30.0,
        credential_path: Path | str | None = None,
    ) -> None:
        self.credential = credential
        self.handlers = handlers
        self.heartbeat_every = heartbeat_every
        self.credential_path = Path(credential_path) if credential_path else credential.path
        self.topic = f"device:{credential.device_uuid}"
        self.api = AsyncApi(credential.url, credential.anon_key, credential.access_token)
        self._live = LiveClient(credential.url, credential.anon_key, credential.access_token, self._on_state)
        self._settings: dict[str, Any] | None = None
        self._message: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._beat: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._closed = asyncio.Event()
        self._closing = False
        self.stop_reason: str | None = None
        """Why the client stopped: `closed`, `unpaired` (the server said so) or `refused` (401: voided or
        expired token found on a call)."""

    # -- life cycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join `device:<uuid>` and `settings:global`, write online + heartbeat, read the effective settings.

        DeviceUnpaired (after forgetting the credential, calling on_unpair) when the token no longer counts.
        """
        if self.credential.expires_in() <= 0:
            await self._unpaired("refused")
            raise DeviceUnpaired(
                f"the token of device {self.credential.name!r} expired: pair it again with a new code"
            )
        if self.credential.expires_in() < EXPIRY_WARNING:
            log.warning(
                "the token of device %s runs out in %.0f days: pair it again before then",
                self.credential.name,
                self.credential.expires_in() / 86_400,
            )
        # events are handled one at a time, in order, outside the socket's reader (a handler may call the API,
        # or close the client)
        self._dispatcher = asyncio.create_task(self._dispatch_events(), name="busymate-device-events")
        self._live.subscribe(self.topic, self._on_device_message)
        self._live.subscribe("settings:global", self._on_settings_message)
        try:
            try:
                await self._live.start()
            except JoinRefused as exc:
                await self._live.close()
                if await self._still_paired():
                    raise
                raise DeviceUnpaired(f"device {self.credential.name!r} is no longer paired ({exc})") from exc
            try:
                await self.report(online=True, heartbeat_at=_now())
                await self._refresh_settings(always=True)
                await self._catch_up()
            except Unauthorized as exc:
                await self._unpaired("refused")
                raise DeviceUnpaired(f"device {self.credential.name!r} is no longer paired: {exc}") from exc
        except BaseException:  # not started: nothing keeps running (the caller may simply try again)
            if not self._closing:
                await self.close(offline=False)
            raise
        self._beat = asyncio.create_task(self._heartbeat(), name="busymate-device-heartbeat")

    async def close(self, *, offline: bool = True) -> None:
        """Stop: write online=false (unless `offline` is False or the token no longer counts), leave. A closed
        client stays closed: make a new one to start again."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self.stop_reason = self.stop_reason or "closed"
        current = asyncio.current_task()
        for task in [self._beat, self._dispatcher, *self._tasks]:
            if task is not None and task is not current:
                task.cancel()
        if offline and self.stop_reason == "closed":
            with contextlib.suppress(ApiRefused, ApiUnreachable, TimeoutError):
                await asyncio.wait_for(self.report(online=False), OFFLINE_TIMEOUT)  # the API may be away
        await self._live.close()
        await self.api.aclose()
        self._closed.set()

    async def wait_closed(self) -> str:
        """Wait until the client stops (closed or unpaired); the reason."""
        await self._closed.wait()
        return self.stop_reason or "closed"

    @property
    def settings(self) -> dict[str, Any]:
        """The effective settings last read."""
        return dict(self._settings or {})

    # -- what the device writes and reads ---------------------------------------------------------------

    async def report(self, **status: Any) -> None:
        """Write the device_status fields a device may: online, vpn_state, heartbeat_at, ip, ip_country."""
        unknown = set(status) - STATUS_FIELDS
        if unknown:
            raise ValueError(
                f"a device may write only {', '.join(sorted(STATUS_FIELDS))}, "
                f"not {', '.join(sorted(unknown))}"
            )
        if "vpn_state" in status and status["vpn_state"] not in VPN_STATES:
            raise ValueError(f"vpn_state is one of {', '.join(sorted(VPN_STATES))}")
        row = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in status.items()}
        if not row:
            return
        changed = await self.api.request(
            "PATCH",
            "/rest/v1/device_status",
            params={"device_uuid": f"eq.{self.credential.device_uuid}"},
            json=row,
            extra={"prefer": "return=representation"},
        )
        if isinstance(changed, list) and not changed:  # no status row yet (made by hand): make it
            await self.api.request(
                "POST",
                "/rest/v1/device_status",
                json={"device_uuid": self.credential.device_uuid, **row},
                extra={"prefer": "return=minimal"},
            )

    async def effective_settings(self) -> dict[str, Any]:
        """The global settings with this device's overrides laid over them (rpc/effective_settings)."""
        answer = await self.api.rpc("effective_settings", {"device_uuid": self.credential.device_uuid})
        return answer if isinstance(answer, dict) else {}

    def pac_url(self) -> str:
        """Where this device's proxy auto-config file is (proxy devices; docs/devices.md, "PAC")."""
        return self.credential.url + PAC_PATH.format(uuid=self.credential.device_uuid)

    # -- inside -------------------------------------------------------------------------------------------

    async def _refresh_settings(self, *, always: bool = False) -> None:
        fresh = await self.effective_settings()
        if always or fresh != self._settings:
            self._settings = fresh
            await _call(self.handlers.on_settings, dict(fresh))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_every)
            try:
                await self.report(online=True, heartbeat_at=_now())
                # overrides of this one device are announced on settings_device:<workspace>, which a device
                # may not join: the heartbeat notices them instead
                await self._refresh_settings()
            except Unauthorized:
                self._spawn(self._unpaired("refused"))
                return
            except (ApiRefused, ApiUnreachable) as exc:
                log.warning("heartbeat of %s failed: %s", self.credential.name, exc)

    async def _still_paired(self) -> bool:
        """Ask the API whether the token still counts; when it does not, act as on `unpair`."""
        try:
            await self.api.select("devices", {"select": "uuid", "uuid": f"eq.{self.credential.device_uuid}"})
        except Unauthorized:
            await self._unpaired("refused")
            return False
        except (ApiRefused, ApiUnreachable):
            return True
        return True

    async def _unpaired(self, reason: str) -> None:
        if self.stop_reason in ("unpaired", "refused"):
            return
        self.stop_reason = reason
        if self.credential_path is not None:
            forget_credential(self.credential_path)
        try:
            await _call(self.handlers.on_unpair)
        finally:
            await self.close(offline=False)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("device %s: a handler failed", self.credential.name)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_state(self, state: str, detail: str) -> None:
        await _call(self.handlers.on_state, state, detail)
        if self._closing:
            return
        if state == "rejoined":  # messages may have been missed while away: read again what they would say
            self._spawn(self._after_rejoin())
        elif state == "refused" and self.topic in detail:
            self._spawn(self._still_paired_quietly())

    async def _after_rejoin(self) -> None:
        await self.report(online=True, heartbeat_at=_now())
        await self._refresh_settings()
        await self._catch_up()

    async def _catch_up(self) -> None:
        """What was asked while the device was away, from its device_status row: a VPN request still pending
        (`requested-on`/`requested-off`) and the live activity message (events are not replayed)."""
        rows = await self.api.select(
            "device_status",
            {"select": "vpn_state,live_activity_message", "device_uuid": f"eq.{self.credential.device_uuid}"},
        )
        if not rows:
            return
        row = rows[0]
        if row.get("vpn_state") in ("requested-on", "requested-off"):
            await _call(self.handlers.on_vpn, row["vpn_state"] == "requested-on")
        message = row.get("live_activity_message")
        if isinstance(message, str) and message != self._message:
            self._message = message
            await _call(self.handlers.on_live_activity_message, message)

    async def _still_paired_quietly(self) -> None:
        await self._still_paired()

    async def _on_settings_message(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        self._spawn(self._refresh_settings())

    def _on_device_message(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        if not self._closing:
            self._events.put_nowait((event, payload))

    async def _dispatch_events(self) -> None:
        while True:
            event, payload = await self._events.get()
            if self._closing:
                return
            try:
                await self._dispatch(event, payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("device %s: the handler of %s failed", self.credential.name, event)

    async def _dispatch(self, event: str, payload: dict[str, Any]) -> None:
        await _call(self.handlers.on_event, event, payload)
        h = self.handlers
        if event == "unpair":
            self._spawn(self._unpaired("unpaired"))
        elif event in ("vpn-on", "vpn-off"):
            await _call(h.on_vpn, event == "vpn-on")
        elif event == "open-sheet":
            sheet = str(payload.get("sheet") or "")
            details = {"open": True, **payload}
            pac_path = payload.get("pac_path")
            if sheet == "pac" and isinstance(pac_path, str) and pac_path.startswith("/"):
                details.setdefault("pac_url", self.credential.url + pac_path)
            await _call(h.on_open_sheet, sheet, details)
        elif event == "live-activity-message":
            message = payload.get("message")
            self._message = message if isinstance(message, str) else None
            await _call(h.on_live_activity_message, self._message)
        elif event == "cdp-command":
            self._spawn(self._cdp(payload))

    async def _cdp(self, payload: dict[str, Any]) -> None:
        """Run one cdp-command through the handler and answer cdp-result with the same id."""
        command_id = payload.get("id")
        if not isinstance(command_id, (str, int)) or isinstance(command_id, bool):
            log.warning("device %s: a cdp-command without an id: %r", self.credential.name, payload)
            return
        method = payload.get("method")
        params = payload.get("params")
        session = payload.get("sessionId")
        answer: dict[str, Any] = {"id": command_id}
        if not isinstance(method, str) or not method:
            answer |= {"ok": False, "error": {"message": "a cdp-command needs a method"}}
        elif params is not None and not isinstance(params, dict):
            answer |= {"ok": False, "error": {"message": "params must be an object"}}
        elif self.handlers.on_cdp_command is None:
            refusal = f"device {self.credential.name} runs no CDP commands"
            answer |= {"ok": False, "error": {"message": refusal}}
        else:
            try:
                result = await _call(
                    self.handlers.on_cdp_command,
                    str(command_id),
                    method,
                    params or {},
                    session if isinstance(session, str) else None,
                )
                answer |= {"ok": True, "result": result if result is not None else {}}
            except Exception as exc:
                error: dict[str, Any] = {"message": str(exc) or type(exc).__name__}
                code = getattr(exc, "code", None)
                if isinstance(code, int):
                    error["code"] = code
                answer |= {"ok": False, "error": error}
        try:
            await self._live.send(self.topic, "cdp-result", answer)
        except ConnectionError as exc:
            log.warning("device %s: cdp-result %s not sent: %s", self.credential.name, command_id, exc)


def _now() -> str:
    return datetime.now(UTC).isoformat()
