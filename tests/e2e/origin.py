"""A local HTTPS origin server for end-to-end proxy tests.

`make_certs` writes a throw-away CA (`ca.pem`) and a leaf certificate for `localhost` and 127.0.0.1
(`leaf.pem`, `leaf-key.pem`). `Origin` serves a small hand-written ASGI app with hypercorn in a background
thread, over TLS with ALPN offering `h2` and `http/1.1`, on a free port of 127.0.0.1:

    GET  /hello               200 "hello HTTP/<version>" and `x-origin: busymate-test`
    GET  /json?...            200 JSON echo of method, path, query, headers and http_version
    POST /echo                200 the request body byte for byte, with the request's content-type
    GET  /large?size=N        200 N deterministic bytes (`bytes(i % 251 for i in range(N))`)
    GET  /binary              200 image/png, `BINARY_BODY`
    GET  /sse?n=5&interval=.2 200 text/event-stream, n events `data: event <i>` spaced by interval seconds
    GET  /slow?delay=1        200 "slow" after delay seconds
    GET  /status/<code>       that status, body "status <code>"
    WS   /ws                  echoes text as "echo: <text>", binary unchanged

Other paths answer 404, other methods 405, a query number that is not one 400. Leaving the `with` stops the
server within a second or so (3 s at worst): SSE streams end, /slow answers 503, WebSockets close with 1001.

    with Origin(tmp_path) as origin:
        httpx.get(f"{origin.url}/hello", verify=origin.ssl_context())
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
    WebsocketScope,
)

log = logging.getLogger(__name__)

# A PNG signature, then every byte value up and down: what a proxy must pass through untouched.
BINARY_BODY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + bytes(range(255, -1, -1))
# 261 rounds of 0..250: a block whose every copy starts the `i % 251` pattern afresh.
_LARGE_BLOCK = bytes(range(251)) * 261
# Stopping: a TLS connection waits this long for the client's close_notify, and what still runs
# `_GRACEFUL_TIMEOUT` seconds after the stop (a client that reads no more of a large body) is cancelled.
_SSL_SHUTDOWN_TIMEOUT = 0.5
_GRACEFUL_TIMEOUT = 1.0


# -- certificates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OriginCerts:
    ca_file: Path  # the CA certificate alone: what clients trust
    leaf_file: Path
    leaf_key_file: Path


def make_certs(folder: Path) -> OriginCerts:
    """A fresh CA and a leaf for `localhost` and 127.0.0.1 signed by it, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Busymate test origin CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    certs = OriginCerts(folder / "ca.pem", folder / "leaf.pem", folder / "leaf-key.pem")
    certs.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.leaf_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    certs.leaf_key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    certs.leaf_key_file.chmod(0o600)
    return certs


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


# -- the ASGI app ------------------------------------------------------------------------------------------


def make_app(closing: asyncio.Event) -> ASGIFramework:
    """The origin's routes (see the module docstring). Once `closing` is set, SSE streams end, /slow answers
    503 and WebSockets close with 1001, so the server can stop without cancelling them: hypercorn cancels an
    HTTP/2 connection badly (its TaskGroup raises, the TLS transport is left open)."""

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "websocket":
            await _websocket(scope, receive, send, closing)
        else:
            await _http(scope, receive, send, closing)

    return app


async def _lifespan(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _websocket(
    scope: WebsocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable, closing: asyncio.Event
) -> None:
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 1008, "reason": "no such websocket"})
        return
    while True:
        event = await _unless_closing(receive(), closing)
        if event is None:
            await send({"type": "websocket.close", "code": 1001, "reason": "origin stopping"})
            return
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
        elif event["type"] == "websocket.receive":
            text = event.get("text")
            if text is not None:
                await send({"type": "websocket.send", "bytes": None, "text": f"echo: {text}"})
            else:
                await send({"type": "websocket.send", "bytes": event.get("bytes") or b"", "text": None})
        elif event["type"] == "websocket.disconnect":
            return


async def _http(
    scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable, closing: asyncio.Event
) -> None:
    method, path = scope["method"], scope["path"]
    query = parse_qs(scope["query_string"].decode("latin-1"))

    async def respond(status: int, body: bytes, content_type: str, *extra: tuple[bytes, bytes]) -> None:
        headers = [(b"content-type", content_type.encode("latin-1")), *extra]
        if status not in (204, 304):
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})  # none for HEAD

    def number(name: str, default: float) -> float:
        return float(query.get(name, [str(default)])[0])

    try:
        if method == "POST" and path == "/echo":
            content_type = dict(scope["headers"]).get(b"content-type", b"application/octet-stream")
            await respond(200, await _body(receive), content_type.decode("latin-1"))
        elif method not in ("GET", "HEAD"):
            await respond(405, b"method not allowed", "text/plain")
        elif path == "/hello":
            body = f"hello HTTP/{scope['http_version']}".encode()
            await respond(200, body, "text/plain; charset=utf-8", (b"x-origin", b"busymate-test"))
        elif path == "/json":
            await respond(200, _json_echo(scope), "application/json")
        elif path == "/large":
            await _large(receive, send, int(number("size", 1024)))
        elif path == "/binary":
            await respond(200, BINARY_BODY, "image/png")
        elif path == "/sse":
            await _sse(receive, send, closing, int(number("n", 5)), number("interval", 0.2))
        elif path == "/slow":
            if await _unless_closing(asyncio.sleep(number("delay", 1), True), closing):
                await respond(200, b"slow", "text/plain")
            else:
                await respond(503, b"origin stopping", "text/plain")
        elif path.startswith("/status/") and path[8:].isdigit() and 200 <= int(path[8:]) <= 599:
            await respond(int(path[8:]), f"status {path[8:]}".encode(), "text/plain")
        else:
            await respond(404, b"not found", "text/plain")
    except ValueError:  # a query parameter that is not a number
        await respond(400, b"bad query", "text/plain")


async def _body(receive: ASGIReceiveCallable) -> bytes:
    chunks: list[bytes] = []
    while True:
        event = await receive()
        if event["type"] != "http.request":
            break
        chunks.append(event["body"])
        if not event["more_body"]:
            break
    return b"".join(chunks)


def _json_echo(scope: HTTPScope) -> bytes:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    echo = {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode("latin-1"),
        "headers": headers,
        "http_version": scope["http_version"],
    }
    return json.dumps(echo).encode()


async def _large(receive: ASGIReceiveCallable, send: ASGISendCallable, size: int) -> None:
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    gone = _disconnected(receive)
    try:
        while True:
            chunk = _LARGE_BLOCK[:size]
            size -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": size > 0})
            await asyncio.sleep(0)  # once the client is gone send() no longer yields: let `gone` see it
            if not size or gone.done():
                return
    finally:
        gone.cancel()


async def _sse(
    receive: ASGIReceiveCallable, send: ASGISendCallable, closing: asyncio.Event, n: int, interval: float
) -> None:
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    gone = _disconnected(receive)
    try:
        for i in range(n):
            if i and await _unless_closing(asyncio.wait([gone], timeout=interval), closing) is None:
                break
            if gone.done():
                return
            event = f"data: event {i}\n\n".encode()
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        gone.cancel()


def _disconnected(receive: ASGIReceiveCallable) -> asyncio.Task[None]:
    """Done once the client has gone: hypercorn goes on writing what an app sends after that, and asyncio
    logs a warning for every write on the closed TLS connection."""

    async def wait() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return asyncio.ensure_future(wait())


async def _unless_closing[T](awaitable: Awaitable[T], closing: asyncio.Event) -> T | None:
    """What `awaitable` gives, or None (and it is cancelled) if the origin starts closing first."""
    task = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(closing.wait())
    await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None


# -- the server --------------------------------------------------------------------------------------------


class _OriginLoop(asyncio.SelectorEventLoop):
    """An event loop whose TLS servers wait at most `_SSL_SHUTDOWN_TIMEOUT` for a client's close_notify when
    closing a connection: asyncio waits 30 s, hypercorn cannot be told otherwise, and a test client that is
    not reading (blocked in the `with` exit that stops the origin) would hold the shutdown up that long."""

    async def create_server(self, *args: Any, **kwargs: Any) -> asyncio.Server:
        kwargs.setdefault("ssl_shutdown_timeout", _SSL_SHUTDOWN_TIMEOUT)
        return await super().create_server(*args, **kwargs)


def _ignore_tls_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # As hypercorn's own runner does: a client that drops a connection mid-handshake (the readiness probe) or
    # mid-close, or that never answers the close_notify (pgjones/hypercorn#202), is no error of the origin's.
    error = context.get("exception")
    if not isinstance(error, ssl.SSLError) and str(error) != "SSL shutdown timed out":
        loop.default_exception_handler(context)


async def _cancel_the_rest() -> None:
    """Cancels every other task, again while hypercorn swallows it (a connection blocked writing to a client
    that does not read), then gives the TLS connections so cut the time to shut down: the loop would close
    with them still open."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1
    while (rest := asyncio.all_tasks() - {asyncio.current_task()}) and loop.time() < deadline:
        for task in rest:
            task.cancel()
        await asyncio.wait(rest, timeout=0.1)
    await asyncio.sleep(_SSL_SHUTDOWN_TIMEOUT + 0.1)


class Origin:
    """The origin in a background thread: `with Origin(folder) as origin:` serves on `origin.url`, once.
    The certificates are in `folder` from the moment it is made."""

    def __init__(self, folder: Path) -> None:
        self.certs = make_certs(folder)
        self.port = 0
        self._loop: _OriginLoop  # made by __enter__, closed by the server thread
        self._stop = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.certs.ca_file

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the origin's CA (for websockets, or httpx's `verify=`)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def __enter__(self) -> Origin:
        self._loop = _OriginLoop()
        self._loop.set_exception_handler(_ignore_tls_errors)
        # Bound here and handed over, so the port cannot be taken between choosing it and serving on it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.certfile = str(self.certs.leaf_file)
        config.keyfile = str(self.certs.leaf_key_file)
        config.alpn_protocols = ["h2", "http/1.1"]
        config.accesslog = None
        config.errorlog = log
        config.graceful_timeout = _GRACEFUL_TIMEOUT
        self._thread = threading.Thread(target=self._serve, args=(config,), name="origin", daemon=True)
        self._thread.start()
        self._wait_until_listening()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._thread is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped already
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=_GRACEFUL_TIMEOUT + _SSL_SHUTDOWN_TIMEOUT + 2)
        if self._thread.is_alive():
            raise RuntimeError("the origin server did not stop")
        if self._error is not None:
            raise RuntimeError("the origin server failed") from self._error

    def _serve(self, config: Config) -> None:
        with asyncio.Runner(loop_factory=lambda: self._loop) as runner:  # cancels what is left on exit
            try:
                runner.run(self._main(config))
            except BaseException as error:  # handed to the test thread by _wait_until_listening
                self._error = error

    async def _main(self, config: Config) -> None:
        server = asyncio.ensure_future(
            serve(make_app(self._stop), config, shutdown_trigger=self._stop.wait, mode="asgi")
        )
        await asyncio.wait(
            [server, asyncio.ensure_future(self._stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        # hypercorn's own graceful_timeout never fires on Python >= 3.12.1, where asyncio's
        # Server.wait_closed() waits for every open connection (pgjones/hypercorn#308): cut them here.
        try:
            await asyncio.wait_for(server, _GRACEFUL_TIMEOUT)
        except TimeoutError:
            await _cancel_the_rest()

    def _wait_until_listening(self, timeout: float = 10.0) -> None:
        # The socket listens only once hypercorn serves it: until then connecting is refused.
        assert self._thread is not None
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.01)
            else:
                return
        raise RuntimeError(f"the origin server did not start on port {self.port}") from self._error
