"""A local site for the CDP capture tests: one ASGI app served by hypercorn on two ports of 127.0.0.1, so
`<scheme>://127.0.0.1:<main>` and `<scheme>://localhost:<other>` are two sites (the iframe is then an
out-of-process frame with its own target). Plain HTTP by default; with `Site(make_certs(folder))` HTTPS (h2 by
ALPN, the WebSocket over h2 then) with the leaf of tests/e2e/origin.py: Chromium trusts it with
`--ignore-certificate-errors-spki-list=<spki_hash(leaf)>`, which, unlike `--ignore-certificate-errors`, leaves
the service worker registering.

    GET  /                  the page: fetch, POSTs (small inline, 200 kB not inline), XHR, a 3-hop redirect
                            chain, a cross-site iframe, a dedicated worker, a service worker, a WebSocket, an
                            SSE stream, a 10 MB download, then a request left pending and a navigation to
                            /page2
    GET  /page2             the page after the navigation (fetches /after)
    GET  /page3             another tab's page (fetches /third)
    GET  /frame             the iframe's document (fetches /frame-data, then tells the parent)
    GET  /worker.js, /sw.js the workers (fetching /worker-data and /sw-data)
    GET  /redirect/<n>      302 to /redirect/<n-1>, /redirect/0 is 200 "landed"
    GET  /download?size=N   N deterministic bytes; /slow waits 5 s; /sse sends events until the page closes it
    POST /echo              the body back;  WS /ws echoes text as "echo: <text>"
    GET  anything else      200 JSON naming the path (/api, /xhr, /after, /frame-data, ...); /api sets
                            two cookies
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from types import TracebackType
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from tests.e2e.origin import OriginCerts

log = logging.getLogger(__name__)

DOWNLOAD_SIZE = 10 * 1024 * 1024
BIG_POST_SIZE = 200_000

PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>cdp test</title></head><body>
<iframe id="frame" src="FRAME_URL"></iframe>
<script>
const wait = (target, type) => new Promise(resolve => target.addEventListener(type, resolve, {once: true}));
async function run() {
  const frameDone = new Promise(resolve => addEventListener('message', e => {
    if (e.data === 'frame-done') resolve();
  }));
  await (await fetch('/api?x=1')).json();
  const headers = {'content-type': 'text/plain'};
  await (await fetch('/echo', {method: 'POST', body: 'hello body', headers})).text();
  await (await fetch('/echo?big=1', {method: 'POST', body: 'x'.repeat(BIG_POST_SIZE)})).text();
  await new Promise(resolve => {
    const x = new XMLHttpRequest(); x.open('GET', '/xhr'); x.onload = resolve; x.send();
  });
  await (await fetch('/redirect/3')).text();
  const worker = new Worker('/worker.js');
  await wait(worker, 'message');
  const reg = await navigator.serviceWorker.register('/sw.js');
  const sw = reg.installing || reg.waiting || reg.active;
  const swReply = wait(navigator.serviceWorker, 'message');
  if (sw.state !== 'activated') await new Promise(r => sw.addEventListener('statechange', () => {
    if (sw.state === 'activated') r();
  }));
  sw.postMessage('go');
  await swReply;
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  await wait(ws, 'open');
  let echoes = 0;
  const echoed = new Promise(r => ws.onmessage = () => { if (++echoes === 2) r(); });
  ws.send('hi'); ws.send('there');
  await echoed;
  ws.close(); await wait(ws, 'close');
  const es = new EventSource('/sse');
  let events = 0;
  await new Promise(r => es.onmessage = () => { if (++events === 3) { es.close(); r(); } });
  const size = (await (await fetch('/download?size=DOWNLOAD_SIZE')).arrayBuffer()).byteLength;
  await frameDone;
  fetch('/slow');  // still pending when the page navigates away: lost
  await (await fetch('/before-nav')).text();  // read whole: its loadingFinished comes before the navigation
  document.title = 'navigating ' + size;
  location.href = '/page2';
}
run().catch(e => { document.title = 'failed: ' + e; });
</script></body></html>
"""

PAGE2 = """<!doctype html><html><head><link rel="icon" href="data:,"><title>page2</title></head><body>
<script>fetch('/after').then(r => r.text()).then(() => { document.title = 'page2 done'; });</script>
</body></html>"""

PAGE3 = """<!doctype html><html><head><link rel="icon" href="data:,"><title>page3</title></head><body>
<script>fetch('/third').then(r => r.text()).then(() => { document.title = 'page3 done'; });</script>
</body></html>"""

FRAME = """<!doctype html><html><body>frame<script>
fetch('/frame-data').then(r => r.text()).then(() => parent.postMessage('frame-done', '*'));
</script></body></html>"""

WORKER = "fetch('/worker-data').then(r => r.text()).then(t => postMessage(t));"

SW = """self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', e => e.waitUntil(self.clients.claim()));
self.addEventListener('message', e => {
  e.waitUntil(fetch('/sw-data').then(r => r.text()).then(t => e.source.postMessage(t)));
});"""


def _download_block() -> bytes:
    return bytes(range(251)) * 261


def make_app(other_url: str, closing: asyncio.Event) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "websocket":
            while True:
                event = await receive()
                if event["type"] == "websocket.connect":
                    await send({"type": "websocket.accept"})
                elif event["type"] == "websocket.receive":
                    text = event.get("text")
                    if text is not None:
                        await send({"type": "websocket.send", "text": f"echo: {text}"})
                    else:
                        await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})
                else:
                    return
        elif scope["type"] == "http":
            await _http(scope, receive, send, other_url, closing)

    return app


async def _respond(send: Any, status: int, body: bytes, content_type: str, *extra: Any) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _http(scope: Any, receive: Any, send: Any, other_url: str, closing: asyncio.Event) -> None:
    path: str = scope["path"]
    query = scope["query_string"].decode()
    body: bytes = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    html = "text/html; charset=utf-8"
    if path == "/":
        page = PAGE.replace("FRAME_URL", f"{other_url}/frame")
        page = page.replace("BIG_POST_SIZE", str(BIG_POST_SIZE)).replace("DOWNLOAD_SIZE", str(DOWNLOAD_SIZE))
        await _respond(
            send, 200, page.encode(), html, (b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2")
        )
    elif path == "/page2":
        await _respond(send, 200, PAGE2.encode(), html)
    elif path == "/page3":
        await _respond(send, 200, PAGE3.encode(), html)
    elif path == "/frame":
        await _respond(send, 200, FRAME.encode(), html)
    elif path == "/worker.js":
        await _respond(send, 200, WORKER.encode(), "text/javascript")
    elif path == "/sw.js":
        await _respond(send, 200, SW.encode(), "text/javascript")
    elif path == "/echo":
        await _respond(send, 200, body, "application/octet-stream")
    elif path.startswith("/redirect/"):
        n = int(path.rsplit("/", 1)[1])
        if n > 0:
            location = f"/redirect/{n - 1}".encode()
            await _respond(send, 302, b"", "text/plain", (b"location", location))
        else:
            await _respond(send, 200, b"landed", "text/plain")
    elif path == "/download":
        size = int(query.partition("=")[2] or DOWNLOAD_SIZE)
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        block = _download_block()
        sent = 0
        while sent < size:
            chunk = block[: size - sent]
            sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": sent < size})
    elif path == "/slow":
        await asyncio.wait([asyncio.create_task(closing.wait())], timeout=5)
        await _respond(send, 200, b"slow", "text/plain")
    elif path == "/sse":
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(50):
            if closing.is_set():
                break
            data = f"id: {i}\ndata: event {i}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        answer = json.dumps({"path": path, "query": query}).encode()
        cookies = [(b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2")] if path == "/api" else []
        await _respond(send, 200, answer, "application/json", *cookies)


class Site:
    """The site in a background thread: `with Site() as site:` serves `site.url` (127.0.0.1) and
    `site.other_url` (localhost, another port); over HTTPS with `Site(make_certs(folder))` (the leaf for
    localhost and 127.0.0.1)."""

    def __init__(self, certs: OriginCerts | None = None) -> None:
        self.certs = certs
        self.scheme = "https" if certs else "http"
        self.port = 0
        self.other_port = 0
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def other_url(self) -> str:
        return f"{self.scheme}://localhost:{self.other_port}"

    def __enter__(self) -> Site:
        socks = []
        for _ in range(2):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        self.port, self.other_port = (s.getsockname()[1] for s in socks)
        config = Config()
        config.bind = [f"fd://{s.detach()}" for s in socks]
        config.accesslog = None
        config.errorlog = log
        config.graceful_timeout = 0.5
        if self.certs:
            config.certfile = str(self.certs.leaf_file)
            config.keyfile = str(self.certs.leaf_key_file)
        self._thread = threading.Thread(target=self._serve, args=(config,), name="cdp-site", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def _serve(self, config: Config) -> None:
        asyncio.set_event_loop(self._loop)
        app = make_app(self.other_url, self._stop)

        async def main() -> None:
            self._ready.set()
            await serve(app, config, shutdown_trigger=self._stop.wait)

        try:
            self._loop.run_until_complete(main())
        except Exception:
            log.exception("the CDP test site stopped")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)  # a daemon thread: a stuck stop does not hold the test run
