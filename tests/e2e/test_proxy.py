"""`busymate proxy run` end to end: curl, headless Chromium, httpx and websockets through device ports to a
local HTTPS origin (HTTP/1.1 and HTTP/2, large, binary, server-sent events, WebSocket); each flow lands in
`entries` under the device of the port it came through and reaches a /realtime/v1 subscriber. Refusals (a
source outside `allowed_sources`, an unpaired device's port, a port outside the pool), the CA downloads,
breakpoints (edit, abort, time out, a response edit) and resend.
"""

from __future__ import annotations

import asyncio
import json
import os
import plistlib
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography import x509
from websockets.asyncio.client import connect

from busymate.settings import Settings
from tests.e2e.origin import BINARY_BODY, Origin
from tests.e2e.proxy_helpers import (
    ProxyProcess,
    entries_with,
    free_port_block,
    fresh_workspace,
    rpc,
    running_proxy,
    spki_hash,
    sql,
    until,
)
from tests.e2e.realtime_helpers import joined, options, realtime_client, run
from tests.world import World

CAP = 1024 * 1024
BREAKPOINT_TIMEOUT = 3


@dataclass
class Capture:
    """The proxy under test, its origin and its devices."""

    proxy: ProxyProcess
    origin: Origin
    devices: dict[str, dict[str, Any]]
    outside_port: int
    w1: str  # the workspaces of devices a and b (this module's own)
    w2: str

    def port(self, device: str) -> int:
        return int(self.devices[device]["proxy_port"])


@pytest.fixture(scope="module")
def capture(stack: Settings, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    block = free_port_block(14)
    pool = range(block.start, block.start + 10)
    admin = world.tokens["admin"]
    tag = uuid.uuid4().hex[:6]
    workspaces = {"w1": fresh_workspace(stack, "proxy-w1"), "w2": fresh_workspace(stack, "proxy-w2")}
    devices = {
        name: rpc(
            stack,
            admin,
            "create_device",
            {
                "workspace_id": workspaces[ws],
                "name": f"proxy-{name}-{tag}",
                "source": "proxy",
                "allowed_sources": ["127.0.0.1/32"],
                "proxy_port": port,
            },
        )
        for name, ws, port in (("a", "w1", pool[0]), ("b", "w2", pool[1]), ("outside", "w1", block[13]))
    }
    with (
        Origin(tmp_path_factory.mktemp("origin")) as origin,
        running_proxy(
            stack, pool, origin.ca_file, BUSYMATE_BREAKPOINT_TIMEOUT=str(BREAKPOINT_TIMEOUT)
        ) as proxy,
    ):
        proxy.wait_ports(lambda ports: {pool[0], pool[1]} <= ports, "the ports of devices a and b")
        yield Capture(proxy, origin, devices, block[13], workspaces["w1"], workspaces["w2"])


def marker() -> str:
    return f"m={uuid.uuid4().hex}"


def curl(
    capture: Capture, port: int, path: str, *args: str, source: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """curl through a device port, trusting only the proxy's CA."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    command = ["curl", "-sS", "--max-time", "30", "--proxy", f"http://127.0.0.1:{port}"]
    command += ["--cacert", str(capture.proxy.ca_file), *args]
    if source is not None:
        command += ["--interface", source]
    return subprocess.run(
        [*command, f"{capture.origin.url}{path}"], capture_output=True, env=env, timeout=60, check=False
    )


def stored(stack: Settings, mark: str, count: int = 1) -> list[dict[str, Any]]:
    return until(lambda: (lambda rows: rows if len(rows) >= count else None)(entries_with(stack, mark)), mark)


def test_curl_http1_and_http2_are_stored_under_the_device_of_the_port(
    stack: Settings, world: World, capture: Capture
) -> None:
    for flag, version in (("--http1.1", "HTTP/1.1"), ("--http2", "HTTP/2.0")):
        mark = marker()
        done = curl(capture, capture.port("a"), f"/hello?{mark}", flag)
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().startswith("hello HTTP/"), done.stdout
        [entry] = stored(stack, mark)
        assert entry["device_uuid"] == capture.devices["a"]["uuid"]
        assert entry["workspace_id"] == capture.w1
        assert (entry["source"], entry["method"], entry["scheme"]) == ("proxy", "GET", "https")
        assert (entry["host"], entry["port"], entry["path"]) == ("localhost", capture.origin.port, "/hello")
        assert entry["query"] == mark
        assert entry["http_version"] == version
        assert entry["status"] == 200
        assert bytes(entry["response_body"]) == done.stdout
        assert ["x-origin", "busymate-test"] in entry["response_headers"]
        assert any(
            name.lower() == "user-agent" and "curl" in value for name, value in entry["request_headers"]
        )
        assert entry["duration_ms"] is not None
        assert entry["duration_ms"] >= entry["ttfb_ms"] >= 0


def test_a_second_device_port_attributes_to_the_second_device(
    stack: Settings, world: World, capture: Capture
) -> None:
    mark = marker()
    assert curl(capture, capture.port("b"), f"/hello?{mark}").returncode == 0
    [entry] = stored(stack, mark)
    assert entry["device_uuid"] == capture.devices["b"]["uuid"]
    assert entry["workspace_id"] == capture.w2


def test_each_flow_reaches_a_realtime_subscriber_of_the_workspace(
    stack: Settings, world: World, capture: Capture
) -> None:
    mark = marker()

    async def scenario() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        async with realtime_client(stack, world.tokens["admin"]) as client:
            channel = client.channel(f"ws:{capture.w1}", options(private=True))
            await joined(channel.on_broadcast("INSERT", lambda m: inbox.put_nowait(dict(m))))
            done = await asyncio.to_thread(curl, capture, capture.port("a"), f"/json?{mark}")
            assert done.returncode == 0, done.stderr
            while True:
                message = await asyncio.wait_for(inbox.get(), 10)
                payload = message["payload"]
                if payload.get("table") != "entries":
                    continue
                rows = [dict(zip(payload["columns"], row, strict=True)) for row in payload["rows"]]
                mine = [r for r in rows if r["query"] == mark]
                if mine:
                    assert mine[0]["device_uuid"] == capture.devices["a"]["uuid"]
                    assert (mine[0]["method"], mine[0]["host"], mine[0]["path"]) == (
                        "GET",
                        "localhost",
                        "/json",
                    )
                    assert mine[0]["status"] == 200
                    return

    run(scenario())


def test_large_bodies_are_capped_and_binary_bodies_kept_byte_for_byte(
    stack: Settings, capture: Capture
) -> None:
    port = capture.port("a")
    for size in (3_000_000, 6_000_000):  # buffered, then streamed through (over 4 MiB)
        mark = marker()
        done = curl(capture, port, f"/large?size={size}&{mark}")
        assert done.returncode == 0, done.stderr
        assert len(done.stdout) == size
        [entry] = stored(stack, mark)
        assert entry["response_body_size"] == size
        assert entry["response_body_truncated"] is True
        assert bytes(entry["response_body"]) == done.stdout[:CAP]
    mark = marker()
    done = curl(capture, port, f"/binary?{mark}")
    assert done.stdout == BINARY_BODY
    [entry] = stored(stack, mark)
    assert bytes(entry["response_body"]) == BINARY_BODY
    assert entry["response_body_truncated"] is False
    assert entry["response_content_type"] == "image/png"
    upload = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB up: streamed, the first MiB kept
    mark = marker()
    assert _post(capture, port, f"/echo?{mark}", upload) == upload
    [entry] = stored(stack, mark)
    assert entry["method"] == "POST"
    assert entry["request_body_size"] == len(upload)
    assert entry["request_body_truncated"] is True
    assert bytes(entry["request_body"]) == upload[:CAP]


def _post(capture: Capture, port: int, path: str, body: bytes) -> bytes:
    with httpx.Client(
        proxy=f"http://127.0.0.1:{port}",
        verify=ssl.create_default_context(cafile=capture.proxy.ca_file),
        timeout=60,
    ) as client:
        response = client.post(
            f"{capture.origin.url}{path}", content=body, headers={"content-type": "application/octet-stream"}
        )
    assert response.status_code == 200
    return response.content


def test_server_sent_events_pass_through_as_they_come(stack: Settings, capture: Capture) -> None:
    mark = marker()
    arrivals: list[float] = []
    with (
        httpx.Client(
            proxy=f"http://127.0.0.1:{capture.port('a')}",
            verify=ssl.create_default_context(cafile=capture.proxy.ca_file),
            timeout=30,
        ) as client,
        client.stream("GET", f"{capture.origin.url}/sse?n=5&interval=0.3&{mark}") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 5
    # Not held back until the end: the first event came about 4 intervals before the last.
    assert arrivals[-1] - arrivals[0] > 0.8
    [entry] = stored(stack, mark)
    body = bytes(entry["response_body"]).decode()
    assert [f"data: event {i}" in body for i in range(5)] == [True] * 5
    assert entry["response_content_type"].startswith("text/event-stream")


def test_a_websocket_is_one_entry_with_its_messages(stack: Settings, capture: Capture) -> None:
    mark = marker()
    context = ssl.create_default_context(cafile=str(capture.proxy.ca_file))

    async def scenario() -> None:
        url = f"wss://localhost:{capture.origin.port}/ws?{mark}"
        async with connect(url, ssl=context, proxy=f"http://127.0.0.1:{capture.port('a')}") as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 10) == "echo: hi"
            await ws.send(b"\x00\x01")
            assert await asyncio.wait_for(ws.recv(), 10) == b"\x00\x01"

    run(scenario())
    [entry] = stored(stack, mark)
    assert (entry["scheme"], entry["status"], entry["path"]) == ("wss", 101, "/ws")
    messages = json.loads(bytes(entry["response_body"]))
    assert [(m["from"], m["type"]) for m in messages] == [
        ("client", "text"),
        ("server", "text"),
        ("client", "binary"),
        ("server", "binary"),
    ]
    assert messages[1]["content"] == "echo: hi"


@pytest.mark.parametrize(("http2", "version"), [(True, "HTTP/2.0"), (False, "HTTP/1.1")])
def test_headless_chromium_through_the_proxy(
    stack: Settings, capture: Capture, tmp_path: Path, http2: bool, version: str
) -> None:
    browser = shutil.which("chromium")
    assert browser is not None, "chromium is not installed (make sysdeps installs it)"
    mark = marker()
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium'}",
        f"--proxy-server=http://127.0.0.1:{capture.port('a')}",
        "--proxy-bypass-list=<-loopback>",
        f"--ignore-certificate-errors-spki-list={spki_hash(capture.proxy.ca_file)}",
        *([] if http2 else ["--disable-http2"]),
        "--dump-dom",
        f"{capture.origin.url}/hello?{mark}",
    ]
    done = subprocess.run(command, capture_output=True, timeout=90, check=False)
    assert b"hello HTTP/" in done.stdout, done.stderr.decode(errors="replace")[-2000:]
    entry = stored(stack, mark)[0]
    assert entry["http_version"] == version
    assert entry["device_uuid"] == capture.devices["a"]["uuid"]
    assert any(name.lower() == "user-agent" and "Chrome" in value for name, value in entry["request_headers"])


def test_a_source_outside_allowed_sources_is_refused(stack: Settings, capture: Capture) -> None:
    mark = marker()
    done = curl(capture, capture.port("a"), f"/hello?{mark}", source="127.0.0.2")
    assert done.returncode != 0
    capture.proxy.wait_log("refused 127.0.0.2 on port")
    assert entries_with(stack, mark) == []
    # The same request from an allowed address goes through: the refusal was the source.
    assert curl(capture, capture.port("a"), f"/hello?{mark}").returncode == 0


def test_a_port_outside_the_pool_is_never_opened(capture: Capture) -> None:
    name = capture.devices["outside"]["name"]
    capture.proxy.wait_log(f"device '{name}' asks for port {capture.outside_port}, which is not in the pool")
    assert capture.outside_port not in capture.proxy.open_ports()
    done = curl(capture, capture.outside_port, "/hello")
    assert done.returncode == 7, done  # connection refused: nothing listens there


def test_an_unpaired_device_port_closes(stack: Settings, world: World, capture: Capture) -> None:
    port = capture.proxy.pool[2]
    device = rpc(
        stack,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": capture.w1,
            "name": f"proxy-c-{uuid.uuid4().hex[:6]}",
            "source": "proxy",
            "allowed_sources": ["127.0.0.0/8"],
            "proxy_port": port,
        },
    )
    capture.proxy.wait_ports(lambda ports: port in ports, f"port {port} to open for a new device")
    mark = marker()
    assert curl(capture, port, f"/hello?{mark}", source="127.0.0.2").returncode == 0
    assert stored(stack, mark)[0]["device_uuid"] == device["uuid"]
    rpc(stack, world.tokens["admin"], "unpair_device", {"device_uuid": device["uuid"]})
    capture.proxy.wait_ports(lambda ports: port not in ports, f"port {port} to close after unpairing")
    mark = marker()
    assert curl(capture, port, f"/hello?{mark}").returncode != 0
    time.sleep(0.5)
    assert entries_with(stack, mark) == []
    assert f"closing port {port}" in capture.proxy.log()


def test_the_ca_is_private_and_served_as_pem_der_and_ios_profile(capture: Capture) -> None:
    folder = capture.proxy.ca_file.parent
    for path in folder.iterdir():
        if path.is_file() and path.name.startswith("mitmproxy"):
            assert path.stat().st_mode & 0o777 == 0o600, path
    assert folder.stat().st_mode & 0o777 == 0o700
    proxy = f"http://127.0.0.1:{capture.port('a')}"
    with httpx.Client(proxy=proxy, timeout=10) as client:
        pem = client.get("http://ca.busymate/busymate-ca.pem")
        der = client.get("http://ca.busymate/busymate-ca.crt")
        profile = client.get("http://ca.busymate/busymate-ca.mobileconfig")
        index = client.get("http://ca.busymate/")
    assert pem.content == capture.proxy.ca_file.read_bytes()
    cert = x509.load_der_x509_certificate(der.content)
    assert cert == x509.load_pem_x509_certificate(pem.content)
    assert "Busymate" in cert.subject.rfc4514_string()
    assert profile.headers["content-type"] == "application/x-apple-aspen-config"
    plist = plistlib.loads(profile.content)
    assert plist["PayloadType"] == "Configuration"
    assert plist["PayloadContent"][0]["PayloadType"] == "com.apple.security.root"
    assert plist["PayloadContent"][0]["PayloadContent"] == der.content
    assert b"busymate-ca.mobileconfig" in index.content


class Paused:
    """A curl started in the background whose flow a breakpoint holds."""

    def __init__(self, capture: Capture, path: str, *args: str) -> None:
        self.result: subprocess.CompletedProcess[bytes] | None = None
        self.thread = threading.Thread(target=self._run, args=(capture, path, args))
        self.started = time.monotonic()
        self.thread.start()

    def _run(self, capture: Capture, path: str, args: tuple[str, ...]) -> None:
        self.result = curl(capture, capture.port("a"), path, *args)

    def done(self) -> subprocess.CompletedProcess[bytes]:
        self.thread.join(60)
        assert self.result is not None
        return self.result


def paused_event(stack: Settings, mark: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        rows = sql(
            stack,
            "select to_jsonb(e) from public.breakpoint_events as e "
            "where e.snapshot -> 'request' ->> 'url' like %s",
            (f"%{mark}%",),
        )
        return rows[0][0] if rows else None

    return until(find, f"a breakpoint event for {mark}")


def event_outcome(stack: Settings, event_id: str) -> str | None:
    rows = sql(stack, "select outcome from public.breakpoint_events where id = %s", (event_id,))
    return rows[0][0] if rows else None


@pytest.fixture
def rules(stack: Settings, world: World, capture: Capture) -> Iterator[None]:
    admin = world.tokens["admin"]
    made = []
    for phase, path in (("request", "/json"), ("response", "/status/*")):
        response = httpx.post(
            f"{stack.api_url}/rest/v1/breakpoints",
            json={
                "workspace_id": capture.w1,
                "device_uuid": capture.devices["a"]["uuid"],
                "phase": phase,
                "method": "GET",
                "host_pattern": "localhost",
                "path_pattern": path,
            },
            headers={
                "apikey": world.anon_key,
                "authorization": f"Bearer {admin}",
                "prefer": "return=representation",
            },
        )
        assert response.status_code == 201, response.text
        made.append(response.json()[0]["id"])
    time.sleep(3)  # the proxy reads rules every 2 s
    try:
        yield
    finally:
        sql(stack, "delete from public.breakpoints where id = any(%s::uuid[])", (made,))


@pytest.mark.usefixtures("rules")
def test_breakpoints_pause_then_edit_abort_or_time_out(
    stack: Settings, world: World, capture: Capture
) -> None:
    admin = world.tokens["admin"]
    # Edit: the origin sees the header the person added.
    mark = marker()
    held = Paused(capture, f"/json?{mark}")
    event = paused_event(stack, mark)
    assert event["active"] is True
    assert event["phase"] == "request"
    assert event["device_uuid"] == capture.devices["a"]["uuid"]
    assert event["snapshot"]["request"]["method"] == "GET"
    time.sleep(0.5)
    assert held.result is None  # still held
    rpc(
        stack,
        admin,
        "continue_breakpoint",
        {"event_id": event["id"], "action": "edit", "edits": {"headers": {"x-edited": "yes"}}},
    )
    done = held.done()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["headers"]["x-edited"] == "yes"
    assert event_outcome(stack, event["id"]) == "edited"
    assert ["x-edited", "yes"] in stored(stack, mark)[0]["request_headers"]

    # Abort: the client gets no answer, the flow is stored with its error.
    mark = marker()
    held = Paused(capture, f"/json?{mark}")
    event = paused_event(stack, mark)
    rpc(stack, admin, "continue_breakpoint", {"event_id": event["id"], "action": "abort"})
    assert held.done().returncode != 0
    assert event_outcome(stack, event["id"]) == "aborted"
    assert stored(stack, mark)[0]["status"] is None

    # Nobody answers: after the timeout the flow goes on unchanged, recorded as timed_out.
    mark = marker()
    held = Paused(capture, f"/json?{mark}")
    event = paused_event(stack, mark)
    done = held.done()
    assert done.returncode == 0
    assert time.monotonic() - held.started >= BREAKPOINT_TIMEOUT - 0.5
    assert "x-edited" not in json.loads(done.stdout)["headers"]
    assert until(lambda: event_outcome(stack, event["id"]) == "timed_out", "timed_out")

    # A response breakpoint: the client sees the edited status and body.
    mark = marker()
    held = Paused(capture, f"/status/200?{mark}")
    event = paused_event(stack, mark)
    assert event["phase"] == "response"
    assert event["snapshot"]["response"]["status"] == 200
    rpc(
        stack,
        admin,
        "continue_breakpoint",
        {"event_id": event["id"], "action": "edit", "edits": {"status": 418, "body": "edited"}},
    )
    done = held.done()
    assert done.returncode == 0
    assert done.stdout == b"edited"
    entry = stored(stack, mark)[0]
    assert entry["status"] == 418
    assert bytes(entry["response_body"]) == b"edited"


def test_resend_replays_a_stored_request_through_its_device(
    stack: Settings, world: World, capture: Capture
) -> None:
    mark = marker()
    assert curl(capture, capture.port("a"), f"/json?{mark}", "-H", "x-sent: once").returncode == 0
    [first] = stored(stack, mark)
    rpc(stack, world.tokens["admin"], "resend_entry", {"entry_id": first["id"]})
    first_again, second = stored(stack, mark, count=2)
    assert first_again["id"] == first["id"]
    assert second["id"] != first["id"]
    assert second["device_uuid"] == capture.devices["a"]["uuid"]
    assert (second["method"], second["path"], second["status"]) == ("GET", "/json", 200)
    assert json.loads(bytes(second["response_body"]))["headers"]["x-sent"] == "once"


def test_a_credential_the_api_refuses_closes_the_port_and_says_why(
    stack: Settings, world: World, capture: Capture
) -> None:
    port = capture.proxy.pool[3]
    device = rpc(
        stack,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": capture.w1,
            "name": f"proxy-d-{uuid.uuid4().hex[:6]}",
            "source": "proxy",
            "allowed_sources": ["127.0.0.1/32"],
            "proxy_port": port,
        },
    )
    capture.proxy.wait_ports(lambda ports: port in ports, f"port {port} to open for a new device")
    # The credential changes behind the proxy's back (no devices:all message: triggers off for this session),
    # so the token it holds is refused at its next write.
    with psycopg.connect(stack.db_url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute(
            "update private.device_credentials set credential_id = gen_random_uuid() where device_uuid = %s",
            (device["uuid"],),
        )
    mark = marker()
    assert curl(capture, port, f"/hello?{mark}").returncode == 0  # captured, then refused at the database
    capture.proxy.wait_log(f"the API refused the credential of device '{device['name']}'")
    capture.proxy.wait_ports(lambda ports: port not in ports, f"port {port} to close after the 401")
    assert curl(capture, port, f"/hello?{marker()}").returncode != 0
    assert entries_with(stack, mark) == []
    spool = capture.proxy.settings.state_dir / "proxy" / "spool" / device["uuid"]
    assert list(spool.glob("*.json"))  # the flow waits in the spool, not lost
