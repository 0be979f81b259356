"""The test origin on its own, no proxy: HTTP/1.1 and HTTP/2 over TLS, bodies, SSE, WebSocket, curl."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.e2e.origin import BINARY_BODY, Origin


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    with Origin(tmp_path_factory.mktemp("origin")) as origin:
        yield origin


@pytest.fixture
def client(origin: Origin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=origin.url, verify=origin.ssl_context(), timeout=10) as client:
        yield client


def test_hello_over_http1(client: httpx.Client) -> None:
    response = client.get("/hello")
    assert response.http_version == "HTTP/1.1"
    assert response.text == "hello HTTP/1.1"
    assert response.headers["x-origin"] == "busymate-test"


def test_hello_over_http2(origin: Origin) -> None:
    with httpx.Client(base_url=origin.url, verify=origin.ssl_context(), http2=True) as client:
        response = client.get("/hello")
    assert response.http_version == "HTTP/2"
    assert response.text == "hello HTTP/2"
    assert response.headers["x-origin"] == "busymate-test"


def test_json_echo(client: httpx.Client) -> None:
    echo = client.get("/json?x=1", headers={"X-Probe": "yes"}).json()
    assert echo["method"] == "GET"
    assert echo["path"] == "/json"
    assert echo["query"] == "x=1"
    assert echo["headers"]["x-probe"] == "yes"
    assert echo["http_version"] == "1.1"


def test_echo_and_binary(client: httpx.Client) -> None:
    body = bytes(range(256)) * 100
    response = client.post("/echo", content=body, headers={"content-type": "application/x-test"})
    assert response.content == body
    assert response.headers["content-type"] == "application/x-test"
    binary = client.get("/binary")
    assert binary.headers["content-type"] == "image/png"
    assert binary.content == BINARY_BODY
    assert set(BINARY_BODY) == set(range(256))


def test_large(client: httpx.Client) -> None:
    response = client.get("/large?size=3000000")
    assert response.headers["content-length"] == "3000000"
    assert len(response.content) == 3_000_000
    assert response.content[:1000] == bytes(i % 251 for i in range(1000))
    assert response.content[-1000:] == bytes(i % 251 for i in range(2_999_000, 3_000_000))


def test_status(client: httpx.Client) -> None:
    assert client.get("/status/418").status_code == 418
    assert client.get("/status/204").status_code == 204
    assert client.get("/nowhere").status_code == 404


def test_sse_events_arrive_spaced(client: httpx.Client) -> None:
    arrivals: list[tuple[float, str]] = []
    start = time.monotonic()
    with client.stream("GET", "/sse?n=3&interval=0.3") as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert "content-length" not in response.headers
        for line in response.iter_lines():
            if line:
                arrivals.append((time.monotonic() - start, line))
    assert [line for _, line in arrivals] == ["data: event 0", "data: event 1", "data: event 2"]
    assert arrivals[0][0] < 0.3  # the first event came before the stream ended
    assert arrivals[2][0] - arrivals[0][0] >= 0.5


def test_websocket_echo(origin: Origin) -> None:
    with connect(f"wss://localhost:{origin.port}/ws", ssl=origin.ssl_context(), open_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo: hi"
        ws.send(b"\x00\xff")
        assert ws.recv(timeout=5) == b"\x00\xff"


def test_curl_http2(origin: Origin) -> None:
    assert shutil.which("curl") is not None, "curl is not installed (make testdeps installs it)"
    result = subprocess.run(
        ["curl", "-sS", "--cacert", str(origin.ca_file), "--http2", f"{origin.url}/hello"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert result.stdout == "hello HTTP/2"


def test_stops_quickly_with_a_stream_in_flight(tmp_path: Path) -> None:
    origin = Origin(tmp_path)
    with httpx.Client(verify=origin.ssl_context(), http2=True) as client:
        with origin:
            assert client.get(f"{origin.url}/hello").status_code == 200  # an idle HTTP/2 connection
            request = client.build_request("GET", f"{origin.url}/sse?n=100&interval=0.1")
            response = client.send(request, stream=True)
            next(response.iter_lines())
            start = time.monotonic()
        assert time.monotonic() - start < 3
        response.close()
