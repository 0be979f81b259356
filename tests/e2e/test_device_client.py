"""The device contract (docs/devices.md), proved with its reference client (busymate.device_client) against
the real API: a device pairs with an activation code and keeps its credential 0600; started, it is online with
a heartbeat; each event its owner's RPCs send (vpn on/off, live activity message, open sheet) reaches its
callback with its payload; a cdp-command its owner sends on device:<uuid> is answered by a cdp-result matched
by id, and another user cannot even join the channel; a settings:global change reaches on_settings; unpair
forgets the credential and the token stops working. The PAC function serves a proxy device's file without a
token, and `busymate devices simulate NAME` prints what it receives and answers as the phone would.
"""

from __future__ import annotations

import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from realtime import AsyncRealtimeChannel

from busymate.device_client import (
    DeviceClient,
    DeviceHandlers,
    DeviceUnpaired,
    load_credential,
    pair,
    save_credential,
)
from busymate.settings import Settings
from busymate.stack.api_process import settings_env
from tests.e2e.proxy_helpers import fresh_workspace, rpc, sql, until
from tests.e2e.realtime_helpers import Inbox, joined, options, realtime_client, refused, run
from tests.world import World, add_user

Event = tuple[str, Any]


@pytest.fixture(scope="module")
def workspace(stack: Settings) -> dict[str, str]:
    """A workspace of its own, with the devices' owner and a stranger in it."""
    workspace_id = fresh_workspace(stack, "devclient")
    owner_id, owner = add_user(stack, workspace_id, "member", "dev-owner")
    _, stranger = add_user(stack, workspace_id, "member", "dev-stranger")
    return {"id": workspace_id, "owner_id": owner_id, "owner": owner, "stranger": stranger}


def new_device(stack: Settings, world: World, workspace: dict[str, str], source: str) -> dict[str, Any]:
    """A device made by the admin through the API, owned by the workspace's owner, and an activation code."""
    port = None
    if source == "proxy":  # a value only, in a range no test listens on: nothing binds it here
        [(port,)] = sql(
            stack,
            "select coalesce(max(proxy_port), 600) + 1 from public.devices "
            "where proxy_port between 601 and 1000",
        )
    device: dict[str, Any] = rpc(
        stack,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": workspace["id"],
            "name": f"phone-{uuid.uuid4().hex[:6]}",
            "source": source,
            "owner_user_id": workspace["owner_id"],
            "proxy_port": port,
        },
    )
    activation = rpc(
        stack,
        world.tokens["admin"],
        "issue_device_activation",
        {"device_uuid": device["uuid"], "valid_for": "5 minutes"},
    )
    device["code"] = activation["code"]
    return device


def status(stack: Settings, device_uuid: str) -> tuple[Any, ...]:
    [row] = sql(
        stack,
        "select online, heartbeat_at, vpn_state from public.device_status where device_uuid = %s",
        (device_uuid,),
    )
    return row


def rest_status(stack: Settings, world: World, token: str) -> int:
    return httpx.get(
        f"{stack.api_url}/rest/v1/device_status?select=online",
        headers={"apikey": world.anon_key, "authorization": f"Bearer {token}"},
    ).status_code


def test_the_device_client_pairs_hears_every_event_answers_cdp_and_is_unpaired(
    stack: Settings, world: World, workspace: dict[str, str], tmp_path: Path
) -> None:
    device = new_device(stack, world, workspace, "proxy")
    device_uuid = device["uuid"]
    topic = f"device:{device_uuid}"
    admin, owner = world.tokens["admin"], workspace["owner"]
    file = tmp_path / "creds" / "device.json"

    async def scenario() -> None:
        cred = await pair(stack.api_url, world.anon_key, device["code"], info={"model": "test"})
        save_credential(file, cred)
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert load_credential(file) == cred
        assert cred.device_uuid == device_uuid
        assert cred.proxy_port == device["proxy_port"]

        events: Inbox[Event] = Inbox("device callbacks")

        def cdp(command: str, method: str, params: dict[str, Any], session: str | None) -> dict[str, Any]:
            events.put(("cdp", (command, method, params, session)))
            if method == "Fail.please":
                raise ValueError("no such method")
            return {"echo": params, "session": session}

        handlers = DeviceHandlers(
            on_unpair=lambda: events.put(("unpair", None)),
            on_vpn=lambda on: events.put(("vpn", on)),
            on_open_sheet=lambda sheet, payload: events.put(("sheet", (sheet, payload))),
            on_live_activity_message=lambda text: events.put(("message", text)),
            on_cdp_command=cdp,
            on_settings=lambda settings: events.put(("settings", settings)),
        )
        client = DeviceClient(load_credential(file) or cred, handlers, heartbeat_every=3600)
        await client.start()
        try:
            online, heartbeat, _ = status(stack, device_uuid)
            assert online is True
            assert heartbeat is not None
            first = await events.first(lambda e: e[0] == "settings", "the settings at start")
            assert first[1] == await client.effective_settings()

            # each RPC its owner calls reaches the callback, with its payload
            rpc(stack, owner, "vpn_on_device", {"device_uuid": device_uuid})
            assert (await events.first(lambda e: e[0] == "vpn", "vpn-on"))[1] is True
            await client.report(vpn_state="on")
            assert status(stack, device_uuid)[2] == "on"
            rpc(stack, owner, "vpn_off_device", {"device_uuid": device_uuid})
            await events.first(lambda e: e == ("vpn", False), "vpn-off")
            rpc(stack, owner, "set_live_activity_message", {"device_uuid": device_uuid, "message": "3 flows"})
            await events.first(lambda e: e == ("message", "3 flows"), "the live activity message")
            rpc(stack, owner, "open_device_sheet", {"device_uuid": device_uuid, "sheet": "pac"})
            _, (sheet, payload) = await events.first(lambda e: e[0] == "sheet", "open-sheet")
            assert sheet == "pac"
            assert payload["open"] is True
            assert payload["proxy_port"] == device["proxy_port"]
            assert payload["pac_url"] == f"{stack.api_url}/functions/v1/pac/{device_uuid}" == client.pac_url()

            # cdp-command from the owner -> cdp-result by id; a failing one -> ok false; a stranger can't join
            async with (
                realtime_client(stack, owner) as ours,
                realtime_client(stack, workspace["stranger"]) as theirs,
            ):
                results: Inbox[dict[str, Any]] = Inbox("cdp results")
                channel: AsyncRealtimeChannel = ours.channel(topic, options(private=True))
                channel.on_broadcast("cdp-result", lambda m: results.put(dict(m["payload"])))
                await joined(channel)
                await channel.send_broadcast(
                    "cdp-command",
                    {"id": "c-1", "method": "Runtime.evaluate", "params": {"x": 1}, "sessionId": "s9"},
                )
                await channel.send_broadcast("cdp-command", {"id": 7, "method": "Fail.please"})
                ok = await results.first(lambda r: r.get("id") == "c-1", "the cdp-result of c-1")
                assert ok == {"id": "c-1", "ok": True, "result": {"echo": {"x": 1}, "session": "s9"}}
                failed = await results.first(lambda r: r.get("id") == 7, "the cdp-result of 7")
                assert failed == {"id": 7, "ok": False, "error": {"message": "no such method"}}
                assert await refused(theirs.channel(topic, options(private=True)))
                assert len([e for e in events.items if e[0] == "cdp"]) == 2

            # settings:global changed by the admin -> on_settings with the new effective settings
            [(before,)] = sql(stack, "select settings from public.settings_global")
            marker = uuid.uuid4().hex
            try:
                rpc(stack, admin, "set_global_settings", {"settings": {**before, "device_test": marker}})
                changed = await events.first(
                    lambda e: e[0] == "settings" and e[1].get("device_test") == marker, "the new settings"
                )
                assert changed[1] == {**before, "device_test": marker}
            finally:
                rpc(stack, admin, "set_global_settings", {"settings": before})

            # unpair: the credential is forgotten, on_unpair fires, the client stops, the token is refused
            assert rest_status(stack, world, cred.access_token) == 200
            rpc(stack, admin, "unpair_device", {"device_uuid": device_uuid})
            await events.first(lambda e: e[0] == "unpair", "unpair")
            assert await client.wait_closed() == "unpaired"
            assert not file.exists()
            assert rest_status(stack, world, cred.access_token) == 401
        finally:
            await client.close()

        # a device unpaired while it was off finds out at start, and so does one whose token ran out
        for kept in (cred, replace(cred, expires_at=1)):
            save_credential(file, kept)
            gone: Inbox[str] = Inbox("on_unpair")
            handlers = DeviceHandlers(on_unpair=partial(gone.put, "unpair"))
            later = DeviceClient(kept, handlers, credential_path=file)
            with pytest.raises(DeviceUnpaired):
                await later.start()
            assert gone.items == ["unpair"]
            assert not file.exists()
            assert later.stop_reason == "refused"

    run(scenario(), 60)


def test_pac_files_are_served_without_a_token(
    stack: Settings, world: World, workspace: dict[str, str]
) -> None:
    proxy = new_device(stack, world, workspace, "proxy")
    phone = new_device(stack, world, workspace, "ios")
    base = f"{stack.api_url}/functions/v1/pac"
    answer = httpx.get(f"{base}/{proxy['uuid']}")  # no apikey, no token: as an operating system fetches it
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ns-proxy-autoconfig"
    host = stack.api_url.split("//")[1].rsplit(":", 1)[0]
    assert f'return "PROXY {host}:{proxy["proxy_port"]}; DIRECT";' in answer.text
    assert answer.text.startswith("function FindProxyForURL(url, host) {")
    assert httpx.get(f"{base}/{proxy['uuid']}.pac").text == answer.text
    for path, code in ((phone["uuid"], 404), (str(uuid.uuid4()), 404), ("not-a-uuid", 400), ("", 400)):
        refused_answer = httpx.get(f"{base}/{path}")
        assert refused_answer.status_code == code, (path, refused_answer.text)
        assert refused_answer.json()["error"] in ("not_found", "validation_failed")
    assert httpx.post(f"{base}/{proxy['uuid']}").status_code == 405


class Simulator:
    """`busymate devices simulate` as a subprocess, its stdout read line by line as it comes."""

    def __init__(self, stack: Settings, name: str) -> None:
        env = {**os.environ, **settings_env(stack), "COLUMNS": "200"}
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "busymate"), "devices", "simulate", name, "--heartbeat", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []  # not yet matched by expect
        self.said: list[str] = []  # everything
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 15) -> str:
        """The first line (from now on, or already read) containing `text`."""

        def found() -> str | None:
            while not self._queue.empty():
                line = self._queue.get()
                self.lines.append(line)
                self.said.append(line)
            return next((line for line in self.lines if text in line), None)

        line = until(found, f"{text!r} from the simulator; it said {self.lines!r}", timeout)
        self.lines = self.lines[self.lines.index(line) + 1 :]
        return line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(15)


def test_devices_simulate_prints_each_event_answers_as_a_phone_and_goes_offline(
    stack: Settings, world: World, workspace: dict[str, str]
) -> None:
    device = new_device(stack, world, workspace, "ios")
    device_uuid, name = device["uuid"], device["name"]
    admin = world.tokens["admin"]
    sim = Simulator(stack, name)
    try:
        sim.expect("pairing")
        sim.expect("settings: {")
        sim.expect(f"simulating {name} ({device_uuid}) as a phone")
        assert status(stack, device_uuid)[0] is True
        file = stack.state_dir / "simulated" / f"{name}.json"
        assert stat.S_IMODE(file.stat().st_mode) == 0o600

        rpc(stack, admin, "vpn_on_device", {"device_uuid": device_uuid})
        sim.expect("vpn-on: the VPN is connected")
        until(lambda: status(stack, device_uuid)[2] == "on", "the simulator to report vpn_state on")
        rpc(stack, admin, "set_live_activity_message", {"device_uuid": device_uuid, "message": "hello phone"})
        sim.expect('live-activity-message: "hello phone"')
        rpc(stack, admin, "open_device_sheet", {"device_uuid": device_uuid, "sheet": "cert"})
        sim.expect("open-sheet: cert opened")

        async def cdp() -> None:
            async with realtime_client(stack, admin) as client:
                results: Inbox[dict[str, Any]] = Inbox("cdp results")
                channel: AsyncRealtimeChannel = client.channel(f"device:{device_uuid}", options(private=True))
                channel.on_broadcast("cdp-result", lambda m: results.put(dict(m["payload"])))
                await joined(channel)
                evaluate = {"id": "e1", "method": "Runtime.evaluate", "params": {"expression": "1+1"}}
                await channel.send_broadcast("cdp-command", evaluate)
                await channel.send_broadcast("cdp-command", {"id": "e2", "method": "Page.navigate"})
                two = await results.first(lambda r: r.get("id") == "e1", "the cdp-result of 1+1")
                assert two["ok"] is True, two
                assert two["result"]["result"]["value"] == 2, two
                no = await results.first(lambda r: r.get("id") == "e2", "the refusal of Page.navigate")
                assert no["ok"] is False, no
                assert "a phone has no DevTools" in no["error"]["message"], no

        run(cdp(), 30)
        sim.expect("cdp-command e1: Runtime.evaluate '1+1' -> 2")
        heartbeat = status(stack, device_uuid)[1]
        until(lambda: status(stack, device_uuid)[1] > heartbeat, "a heartbeat")
        # an override of this one device is not announced to it: the heartbeat notices it
        override = {"device_uuid": device_uuid, "overrides": {"sim_override": 1}}
        rpc(stack, admin, "set_device_settings", override)
        sim.expect('"sim_override": 1')

        # Ctrl-C: offline; started again it uses its saved credential (no new pairing), catches up with the
        # VPN request made while it was away, and runs until unpaired
        sim.proc.send_signal(signal.SIGINT)
        sim.expect(f"stopped: {name} is offline")
        assert sim.proc.wait(15) == 0
        assert status(stack, device_uuid)[0] is False
        rpc(stack, admin, "vpn_off_device", {"device_uuid": device_uuid})  # asked while it is away
        sim = Simulator(stack, name)
        sim.expect("vpn-off: the VPN is disconnected")  # caught up from device_status at start
        sim.expect(f"simulating {name}")
        until(lambda: status(stack, device_uuid)[2] == "off", "the simulator to report vpn_state off")
        assert not [line for line in sim.said if "pairing" in line], sim.said
        rpc(stack, admin, "unpair_device", {"device_uuid": device_uuid})
        sim.expect("unpair: the credential is forgotten")
        sim.expect(f"stopped: {name} was unpaired")
        assert sim.proc.wait(15) == 0
        assert not file.exists()
    finally:
        sim.stop()
    # what cannot be simulated is said in one line
    env = {**os.environ, **settings_env(stack), "COLUMNS": "200"}
    for args, said in (
        (["no-such-device-here"], "no device 'no-such-device-here'"),
        ([name, "--code", "AAAAA-BBBBB"], "pairing failed"),
    ):
        done = subprocess.run(
            [str(Path(sys.executable).parent / "busymate"), "devices", "simulate", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.returncode != 0
        assert said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
