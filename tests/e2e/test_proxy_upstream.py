"""A capture port is never a way into the stack: through a device's port, the proxy refuses the API server's
port, the database's port and every port of its pool on any address of this machine, and link-local addresses,
whatever the device's allow list; the operator adds blocks and exceptions (BUSYMATE_PROXY_BLOCK / _ALLOW).

Each refusal is a 403 from the proxy naming the upstream and why (a CONNECT gets it to the CONNECT itself),
one line in the proxy's log, and an entry with its error in the feed. Origins on other loopback ports pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from busymate.proxy.upstream import Upstreams, parse_rules
from busymate.settings import Settings
from busymate.stack.api_process import settings_env
from tests.e2e.origin import Origin
from tests.e2e.proxy_helpers import (
    ProxyProcess,
    entries_with,
    free_port_block,
    fresh_workspace,
    rpc,
    running_proxy,
    sql,
    until,
)
from tests.world import World

SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # what a Postgres client sends first


class Tiny:
    """A plain-HTTP server on 127.0.0.1:<port> that answers `tiny <port>` and counts the requests it got."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hits = 0
        tiny = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tiny.hits += 1
                body = f"tiny {tiny.port}".encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Guarded:
    """The proxy under test, its device ports, and the servers around it."""

    proxy: ProxyProcess
    origin: Origin
    device_a: dict[str, Any]
    device_b: dict[str, Any]
    allowed_pool_server: Tiny  # on a pool port, named in BUSYMATE_PROXY_ALLOW
    pool_server: Tiny  # on a pool port, not named
    blocked_server: Tiny  # outside the pool, on a port BUSYMATE_PROXY_BLOCK names
    open_server: Tiny  # outside the pool, named nowhere

    @property
    def port(self) -> int:
        return int(self.device_a["proxy_port"])


@pytest.fixture(scope="module")
def guarded(stack: Settings, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    block = free_port_block(6)
    pool = range(block.start, block.start + 4)
    workspace = fresh_workspace(stack, "upstream")
    tag = uuid.uuid4().hex[:6]
    a, b = (
        rpc(
            stack,
            world.tokens["admin"],
            "create_device",
            {
                "workspace_id": workspace,
                "name": f"upstream-{name}-{tag}",
                "source": "proxy",
                "allowed_sources": ["127.0.0.1/32"],
                "proxy_port": port,
            },
        )
        for name, port in (("a", pool[0]), ("b", pool[1]))
    )
    servers = [Tiny(port) for port in (pool[2], pool[3], block[4], block[5])]
    env = {
        "BUSYMATE_PROXY_BLOCK": f"127.0.0.0/8:{block[4]}, blocked.example",
        "BUSYMATE_PROXY_ALLOW": f"127.0.0.1:{pool[2]}",
    }
    try:
        with (
            Origin(tmp_path_factory.mktemp("origin")) as origin,
            running_proxy(stack, pool, origin.ca_file, **env) as proxy,
        ):
            proxy.wait_ports(lambda ports: {pool[0], pool[1]} <= ports, "the ports of devices a and b")
            yield Guarded(proxy, origin, a, b, *servers)
    finally:
        for server in servers:
            server.close()


def get(guarded: Guarded, url: str, **kwargs: Any) -> httpx.Response:
    """A plain-HTTP request through device a's port (absolute-form, as any HTTP proxy client sends it)."""
    with httpx.Client(proxy=f"http://127.0.0.1:{guarded.port}", trust_env=False, timeout=30) as client:
        return client.get(url, **kwargs)


def curl(
    guarded: Guarded, url: str, *args: str, input_: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """curl through device a's port, trusting only the proxy's CA (`-g`: brackets are an IPv6 address)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    command = ["curl", "-sS", "-g", "--max-time", "30", "--proxy", f"http://127.0.0.1:{guarded.port}"]
    command += ["--cacert", str(guarded.proxy.ca_file), *args, url]
    return subprocess.run(command, input=input_, capture_output=True, env=env, timeout=60, check=False)


def connect(guarded: Guarded, target: str, then: bytes | None = None) -> tuple[bytes, bytes]:
    """A CONNECT to `target` through device a's port: the proxy's answer, and what answers `then` after."""
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=30) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = _read_answer(sock)
        after = b""
        if then is not None:
            with contextlib.suppress(OSError):
                sock.sendall(then)
                sock.settimeout(3)
                after = sock.recv(65536)
        return answer, after


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def this_hosts_lan_address() -> str | None:
    """A non-loopback address of this machine (its route to a documentation address; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def refused_entries(stack: Settings, device: dict[str, Any], method: str, host: str, port: int) -> list[Any]:
    return sql(
        stack,
        "select status, error from public.entries where device_uuid = %s and method = %s and host = %s "
        "and port = %s",
        (device["uuid"], method, host, port),
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "0.0.0.0"])  # noqa: S104
def test_a_connect_to_the_database_gets_403_and_no_postgres_handshake(
    stack: Settings, guarded: Guarded, host: str
) -> None:
    answer, after = connect(guarded, f"{host}:{stack.db_port}", then=SSL_REQUEST)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert f"{host}:{stack.db_port}".encode() in answer
    assert b"the database&#x27;s port on this machine" in answer
    # Postgres answers an SSLRequest with one byte, S or N: nothing of the kind comes back.
    assert after[:1] not in (b"S", b"N"), after[:100]
    rows = until(
        lambda: refused_entries(stack, guarded.device_a, "CONNECT", host.lower(), stack.db_port), host
    )
    assert rows[0][0] == 403
    assert rows[0][1].startswith(f"busymate refuses the upstream {host}:{stack.db_port}"), rows[0][1]


def api_hosts() -> list[str]:
    lan = this_hosts_lan_address()
    loopback = ["127.0.0.1", "localhost", "[::1]", "2130706433", "0x7f000001", "0.0.0.0"]  # noqa: S104
    return [*loopback, *([lan] if lan else [])]


@pytest.mark.parametrize("host", api_hosts())
def test_the_admin_api_through_a_device_port_gets_403(
    stack: Settings, world: World, guarded: Guarded, host: str
) -> None:
    mark = f"m={uuid.uuid4().hex}"
    key = world.service_key
    url = f"http://{host}:{stack.api_port}/auth/v1/admin/users?{mark}"
    if host.startswith("["):  # httpx writes http://::1:port/ in the request line; curl keeps the brackets
        done = curl(
            guarded, url, "-H", f"apikey: {key}", "-H", f"authorization: Bearer {key}", "-w", "\n%{http_code}"
        )
        text, _, status = done.stdout.decode().rpartition("\n")
    else:
        response = get(guarded, url, headers={"apikey": key, "authorization": f"Bearer {key}"})
        text, status = response.text, str(response.status_code)
    assert status == "403", text[:300]
    assert "users" not in text
    assert f"busymate refuses the upstream {host}:{stack.api_port}" in text
    assert "the API server&#x27;s port on this machine" in text
    [entry] = until(lambda: entries_with(stack, mark), mark)
    assert entry["status"] == 403
    assert entry["error"].startswith("busymate refuses the upstream"), entry["error"]
    assert "the API server's port" in entry["error"]


def test_a_pool_port_is_refused_even_where_a_server_listens(stack: Settings, guarded: Guarded) -> None:
    device_b = int(guarded.device_b["proxy_port"])
    answer, _ = connect(guarded, f"2130706433:{device_b}")  # mitmproxy's own loop check knows only 127.0.0.1
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert b"a port of the proxy pool" in answer
    response = get(guarded, f"http://127.0.0.1:{guarded.pool_server.port}/")
    assert response.status_code == 403, response.text[:300]
    assert "a port of the proxy pool" in response.text
    assert guarded.pool_server.hits == 0


def test_link_local_addresses_are_refused_before_any_connection(stack: Settings, guarded: Guarded) -> None:
    before = len(guarded.proxy.log())
    response = get(guarded, "http://169.254.169.254/latest/meta-data/")
    assert response.status_code == 403, response.text[:300]
    assert "busymate refuses the upstream 169.254.169.254:80: a link-local address" in response.text
    answer, _ = connect(guarded, "[fe80::1]:443")
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert b"busymate refuses the upstream [fe80::1]:443: a link-local address" in answer
    guarded.proxy.wait_log("refused CONNECT [fe80::1]:443")
    log = guarded.proxy.log()[before:]
    assert log.count("refused GET 169.254.169.254:80 from 127.0.0.1") == 1, log
    # mitmproxy logs every connection it opens or fails to open; it never tried these.
    assert "server connect 169.254.169.254" not in log
    assert "error establishing server connection" not in log
    rows = until(lambda: refused_entries(stack, guarded.device_a, "GET", "169.254.169.254", 80), "the entry")
    assert rows[0][0] == 403
    assert "link-local" in rows[0][1]


def test_the_operator_blocks_and_allows_upstreams(guarded: Guarded) -> None:
    blocked = get(guarded, f"http://127.0.0.1:{guarded.blocked_server.port}/")
    assert blocked.status_code == 403, blocked.text[:300]
    assert (
        f"the operator blocks 127.0.0.0/8:{guarded.blocked_server.port} (BUSYMATE_PROXY_BLOCK)"
        in blocked.text
    )
    assert guarded.blocked_server.hits == 0
    by_name = get(guarded, "http://blocked.example/")
    assert by_name.status_code == 403, by_name.text[:300]
    assert "the operator blocks blocked.example" in by_name.text
    allowed = get(guarded, f"http://127.0.0.1:{guarded.allowed_pool_server.port}/")
    assert allowed.status_code == 200, allowed.text[:300]
    assert allowed.text == f"tiny {guarded.allowed_pool_server.port}"


def test_origins_on_other_loopback_ports_still_pass(stack: Settings, guarded: Guarded) -> None:
    plain = get(guarded, f"http://localhost:{guarded.open_server.port}/")
    assert plain.status_code == 200, plain.text[:300]
    assert plain.text == f"tiny {guarded.open_server.port}"
    mark = f"m={uuid.uuid4().hex}"
    done = curl(guarded, f"{guarded.origin.url}/hello?{mark}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("hello HTTP/"), done.stdout
    [entry] = until(lambda: entries_with(stack, mark), mark)
    assert entry["status"] == 200
    assert entry["error"] is None


def test_a_large_upload_is_refused_before_its_body_streams(stack: Settings, guarded: Guarded) -> None:
    # Bodies over 4 MiB stream straight through, so the refusal comes before any of it goes upstream.
    mark = f"m={uuid.uuid4().hex}"
    done = curl(
        guarded,
        f"http://127.0.0.1:{stack.api_port}/rest/v1/rpc/anything?{mark}",
        "--data-binary",
        "@-",
        "-w",
        "\n%{http_code}",
        input_=b"x" * (5 * 1024 * 1024),
    )
    text, _, status = done.stdout.decode().rpartition("\n")
    assert status == "403", text[:300]
    assert f"busymate refuses the upstream 127.0.0.1:{stack.api_port}" in text
    [entry] = until(lambda: entries_with(stack, mark), mark)
    assert (entry["status"], entry["method"]) == (403, "POST")


def test_a_name_that_resolves_elsewhere_when_connecting_is_caught() -> None:
    """DNS rebinding: the lookup the connection makes is checked, not only the one the 403 page made."""

    async def scenario() -> None:
        hits = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal hits
            hits += 1
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        answers = iter(["192.0.2.10", "127.0.0.1"])  # a public-looking address first, then this machine

        async def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            address = next(answers)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]

        loop = asyncio.get_running_loop()
        loop.getaddrinfo = rebinding  # type: ignore[method-assign]
        upstreams = Upstreams(((range(port, port + 1), "the API server's port"),))
        upstreams.install(loop)
        assert await upstreams.check("rebind.example", port) is None  # what the 403 page saw

        async def connection() -> None:  # as mitmproxy does: server_connect, then open_connection
            assert upstreams.connecting("rebind.example", port) is None
            await asyncio.open_connection("rebind.example", port)

        with pytest.raises(
            OSError, match=r"busymate refuses the upstream rebind\.example:\d+ \(127\.0\.0\.1\)"
        ):
            await asyncio.create_task(connection())
        server.close()
        await server.wait_closed()
        assert hits == 0

    asyncio.run(scenario())


def test_a_bad_rule_stops_the_proxy_before_it_starts(stack: Settings) -> None:
    env = {**os.environ, **settings_env(stack), "BUSYMATE_PROXY_ALLOW": "10.0.0.1/8"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "busymate"), "proxy", "run", "--block-upstream", "x:99999"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "BUSYMATE_PROXY_BLOCK (--block-upstream): 'x:99999': '99999' is not a port" in done.stderr.decode()
    with pytest.raises(ValueError, match=r"did you mean 10\.0\.0\.0/8"):
        parse_rules("10.0.0.1/8")
