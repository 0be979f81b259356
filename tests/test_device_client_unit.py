"""The device contract's pieces that need no server: the credential file (0600 from its first byte, its JSON
read back, a broken one refused in words), the PAC host taken from a Host header (and nothing that could break
out of the script's string), the simulated phone's arithmetic (plain arithmetic only, never code), and
LiveClient.send refusing a topic it has not joined."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from busymate.cli.simulate import NO_DEVTOOLS, arithmetic, evaluate
from busymate.device_client import DeviceCredential, forget_credential, load_credential, save_credential
from busymate.errors import BusymateError
from busymate.functions.pac import pac_file, proxy_host
from busymate.live import LiveClient


def test_the_credential_file_is_private_and_round_trips(tmp_path: Path) -> None:
    cred = DeviceCredential(
        "http://127.0.0.1:54321", "anon", "6f1c0000-0000-0000-0000-000000000001", "ws", "Pixel", "ios", "t", 9
    )
    file = tmp_path / "deep" / "device.json"
    assert load_credential(file) is None
    save_credential(file, cred)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    assert load_credential(file) == cred
    assert cred.path == file
    file.write_text('{"url": "x"}')
    with pytest.raises(BusymateError, match="lacks anon_key"):
        load_credential(file)
    file.write_text("not json")
    with pytest.raises(BusymateError, match="is not JSON"):
        load_credential(file)
    forget_credential(file)
    forget_credential(file)  # gone already: nothing to do
    assert load_credential(file) is None


def test_the_pac_host_comes_from_the_host_header_and_nothing_else() -> None:
    assert proxy_host("api.example.com") == "api.example.com"
    assert proxy_host("192.168.1.20:54321") == "192.168.1.20"
    assert proxy_host("[::1]:54321") == "[::1]"
    for bad in ("", 'a"; alert(1); "', "a b", "host/path", "x:y:z"):
        assert proxy_host(bad) is None, bad
    assert b'return "PROXY 10.0.0.2:9101; DIRECT";' in pac_file("10.0.0.2", 9101)


def test_the_simulated_phone_evaluates_arithmetic_only() -> None:
    assert arithmetic("1+1") == 2
    assert arithmetic(" (2*3) - 4/2 ") == 4.0
    assert evaluate("Runtime.evaluate", {"expression": "6*7"}) == {
        "result": {"type": "number", "value": 42, "description": "42"}
    }
    for method, params in (
        ("Runtime.evaluate", {"expression": "__import__('os')"}),
        ("Runtime.evaluate", {"expression": "9**9**9"}),
        ("Runtime.evaluate", {}),
        ("Page.navigate", {"url": "https://example.com"}),
    ):
        with pytest.raises(ValueError, match="a phone has no DevTools") as refused:
            evaluate(method, params)
        assert str(refused.value) == NO_DEVTOOLS
    with pytest.raises(ValueError, match="division by zero"):
        arithmetic("1/0")


def test_live_send_needs_a_joined_topic() -> None:
    async def scenario() -> None:
        live = LiveClient("http://127.0.0.1:9", "anon", None)
        with pytest.raises(ConnectionError, match="not joined to device:x"):
            await live.send("device:x", "cdp-result", {"id": 1, "ok": True})

    asyncio.run(scenario())
