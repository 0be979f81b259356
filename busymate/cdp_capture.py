"""Capturing a Chromium browser's traffic over the Chrome DevTools Protocol (what DevTools' Network panel
shows).

`CdpCapture(ws_url, on_entry)` connects to the browser endpoint (one WebSocket, flattened sessions), attaches
to every page, and through `Target.setAutoAttach {autoAttach, waitForDebuggerOnStart, flatten}` on the browser
and on every session to iframes of other sites, dedicated workers and service workers, enabling `Network` on
each before resuming it (`Runtime.runIfWaitingForDebugger`). Each finished request, redirect hop and WebSocket
is handed to `on_entry` as an `ingest_entries` row (see `busymate.cdp_entries` and /tmp docs "cdp").

    process, ws_url = await launch_chromium(headless=True)
    capture = CdpCapture(ws_url, rows.append)
    await capture.start()
    print(await capture.command("Runtime.evaluate", {"expression": "1+1"}, session_id=...))
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from busymate import cdp_entries as ce

log = logging.getLogger(__name__)

# Asked of Chrome in `Network.enable`: how much response data it keeps for `getResponseBody` (its defaults are
# smaller, and a body pushed out of the buffer cannot be read any more).
MAX_TOTAL_BUFFER = 256 * 1024 * 1024
MAX_RESOURCE_BUFFER = 32 * 1024 * 1024
# Bodies kept in the browser process too (`Network.configureDurableMessages`), so they survive the
# navigation that clears the renderer's buffer (newer Chrome; older ones answer an error, which is ignored).
DURABLE_TOTAL_BUFFER = 64 * 1024 * 1024
# How long a finished hop waits for the ExtraInfo Chrome announced (`hasExtraInfo`) before it is sent without.
EXTRA_INFO_WAIT = 1.0
# Targets whose network traffic is captured (a `browser`, `tab` or `auction_worklet` target is not).
_CAPTURED_TYPES = {"page", "iframe", "worker", "shared_worker", "service_worker", "other", "webview"}
_EVICTED_MESSAGES = ("no resource with given identifier", "no data found")
_BROWSER_DOMAINS = {"Browser", "Target", "SystemInfo", "Storage", "Tethering", "IO", "Tracing", "Memory"}
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class CdpError(Exception):
    """An error answer from the browser (its message), or the connection being gone."""


@dataclass
class CaptureStats:
    captured: int = 0  # entries handed to on_entry
    pending: int = 0  # requests and sockets not finished yet
    errors: int = (
        0  # events that could not be handled, targets that would not enable Network, on_entry failures
    )
    bodies_evicted: int = 0
    bodies_truncated: int = 0
    extra_info_missing: int = 0  # sent without the ExtraInfo Chrome announced
    sessions: int = 0  # attached targets right now
    targets: int = 0  # targets attached since the start
    websockets: int = 0


class _Session:
    """The events of one attached target. Requests live in the capture's `chains` (by Chrome's requestId,
    unique in the browser), not here: Chrome reports some requests on two sessions (an out-of-process iframe's
    document: sent and answered on the parent's, finished on the frame's; a worker's script likewise)."""

    def __init__(self, capture: CdpCapture, session_id: str, target: dict[str, Any]) -> None:
        self.capture = capture
        self.id = session_id
        self.target = target
        self.sockets: dict[str, ce.Socket] = {}
        self.closed = False
        self.ready = asyncio.Event()  # Network on, resumed

    # -- helpers

    def _chain(self, request_id: str) -> ce.Chain:
        chains = self.capture.chains
        chain = chains.get(request_id)
        if chain is None:
            chain = chains[request_id] = ce.Chain(born=asyncio.get_running_loop().time())
        return chain

    def _hop(self, request_id: str) -> ce.Hop | None:
        chain = self.capture.chains.get(request_id)
        if chain is None or not chain.hops:
            return None
        return chain.hops[-1]

    def _finish(self, hop: ce.Hop) -> None:
        hop.done = True
        hop.done_at = asyncio.get_running_loop().time()
        self.capture._settle(hop)

    # -- events

    def handle(self, method: str, p: dict[str, Any]) -> None:
        handler = _HANDLERS.get(method)
        if handler is not None:
            handler(self, p)

    def request_will_be_sent(self, p: dict[str, Any]) -> None:
        request = p["request"]
        request_id = p["requestId"]
        url = request["url"]
        if request.get("urlFragment"):
            url += request["urlFragment"]
        chain = self._chain(request_id)
        previous = chain.hops[-1] if chain.hops else None
        redirect = p.get("redirectResponse")
        if previous is not None and not previous.done and not redirect and previous.url == url:
            return  # the same request reported by a second session
        hop = ce.Hop(
            request_id=request_id,
            index=len(chain.hops),
            url=url,
            method=request.get("method", "GET"),
            headers=request.get("headers") or {},
            wall_time=float(p.get("wallTime") or time.time()),
            timestamp=float(p["timestamp"]),
            resource_type=p.get("type") or "",
            session_id=self.id,
            frame_id=p.get("frameId") or "",
            loader_id=p.get("loaderId") or "",
        )
        # Appended before the previous hop is closed, so the chain is never seen empty (and dropped) between.
        chain.hops.append(hop)
        if previous is not None and not previous.done:
            if redirect:
                # The previous hop was a redirect: it ends here, its response is the redirect's.
                previous.response = redirect
                previous.has_extra_info = bool(p.get("redirectHasExtraInfo"))
                previous.end_timestamp = float(p["timestamp"])
                previous.body_state = ce.NONE
                previous.body_size = 0
                chain.attach_extras()
                self._finish(previous)
            else:
                previous.error = previous.error or "superseded"
                self._finish(previous)
        chain.attach_extras()
        if not ce.is_network_url(url):
            hop.emitted = True  # data:, blob: and the like: not traffic
            if all(h.emitted for h in chain.hops):
                self.capture.chains.pop(request_id, None)
            return
        self.capture.stats.pending += 1
        self._request_body(hop, request)

    def _request_body(self, hop: ce.Hop, request: dict[str, Any]) -> None:
        entries = request.get("postDataEntries")
        if not self.capture.bodies:
            hop.post_state = ce.SKIPPED if request.get("hasPostData") else ce.NONE
        elif entries and all("bytes" in e for e in entries):
            hop.post_data = b"".join(base64.b64decode(e["bytes"]) for e in entries)
            hop.post_state = ce.CAPTURED
        elif request.get("postData") is not None:
            hop.post_data = str(request["postData"]).encode()
            hop.post_state = ce.CAPTURED
        elif request.get("hasPostData"):
            hop.post_pending = True  # not inline (too large, or a blob/file): asked for now
            self.capture._spawn(self._fetch_post_data(hop))

    async def _fetch_post_data(self, hop: ce.Hop) -> None:
        try:
            answer = await self.capture._call(
                "Network.getRequestPostData", {"requestId": hop.request_id}, self.id
            )
            data = str(answer.get("postData", ""))
            hop.post_data = base64.b64decode(data) if answer.get("base64Encoded") else data.encode()
            hop.post_state = ce.CAPTURED
        except CdpError:
            hop.post_state = ce.EVICTED
        finally:
            hop.post_pending = False
            self.capture._settle(hop)

    def request_extra(self, p: dict[str, Any]) -> None:
        chain = self._chain(p["requestId"])
        chain.request_extras.append(p)
        chain.attach_extras()
        self._settle_chain(chain)

    def response_extra(self, p: dict[str, Any]) -> None:
        chain = self._chain(p["requestId"])
        chain.response_extras.append(p)
        chain.attach_extras()
        self._settle_chain(chain)

    def _settle_chain(self, chain: ce.Chain) -> None:
        for hop in list(chain.hops):
            self.capture._settle(hop)

    def response_received(self, p: dict[str, Any]) -> None:
        response = p["response"]
        hop = self._hop(p["requestId"])
        if hop is None or hop.done:
            if p.get("type") != "Document" or not ce.is_network_url(str(response.get("url", ""))):
                return  # (DevTools' own reads, as Page.getResourceContent refetching from the cache, come so)
            # Its requestWillBeSent came before this session was attached (a new tab's first document: the
            # browser starts the navigation before the renderer waits for us): made from the response.
            timing = response.get("timing") or {}
            now = time.time()
            started = float(timing.get("requestTime") or p["timestamp"])
            chain = self._chain(p["requestId"])
            hop = ce.Hop(
                request_id=p["requestId"],
                index=len(chain.hops),
                url=str(response["url"]),
                method="GET",
                headers=response.get("requestHeaders") or {},
                wall_time=now - (float(p["timestamp"]) - started),
                timestamp=started,
                resource_type=p.get("type") or "",
                session_id=self.id,
                frame_id=p.get("frameId") or "",
                loader_id=p.get("loaderId") or "",
            )
            chain.hops.append(hop)
            chain.attach_extras()
            self.capture.stats.pending += 1
        hop.response = response
        hop.session_id = self.id
        hop.has_extra_info = bool(p.get("hasExtraInfo"))
        hop.resource_type = p.get("type") or hop.resource_type

    def data_received(self, p: dict[str, Any]) -> None:
        hop = self._hop(p["requestId"])
        if hop is not None and not hop.done:
            hop.data_length += int(p.get("dataLength") or 0)

    def event_source_message(self, p: dict[str, Any]) -> None:
        hop = self._hop(p["requestId"])
        if hop is not None and not hop.done:
            hop.sse_events.append(p)

    def loading_finished(self, p: dict[str, Any]) -> None:
        hop = self._hop(p["requestId"])
        if hop is None or hop.done or hop.emitted:
            return
        hop.session_id = self.id  # the session that holds the body
        hop.end_timestamp = float(p["timestamp"])
        hop.encoded_length = int(p.get("encodedDataLength") or 0)
        if hop.is_event_stream and hop.sse_events:
            self._stream_body(hop)  # an EventSource: its events (a fetch() of a stream is read as a body)
        elif not self._has_body(hop):
            hop.body_state = ce.NONE
            hop.body_size = 0 if hop.response is not None else None
        elif not self.capture.bodies:
            hop.body_state = ce.SKIPPED
            hop.body_size = hop.data_length
        else:
            # Read now (the call leaves before the next event is read): a navigation or the buffer filling
            # up would evict it later.
            hop.body_pending = True
            self.capture._spawn(self._fetch_body(hop))
        self._finish(hop)

    def _has_body(self, hop: ce.Hop) -> bool:
        status = int((hop.response or {}).get("status") or 0)
        if hop.response is None or hop.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return False
        return hop.data_length > 0 or hop.encoded_length != 0

    def _stream_body(self, hop: ce.Hop) -> None:
        hop.body_state = ce.STREAMED if self.capture.bodies else ce.SKIPPED
        data = ce.sse_body(hop.sse_events)
        hop.body_size = max(hop.data_length, len(data))
        if self.capture.bodies:
            hop.body = data[: self.capture.max_body_bytes]

    async def _fetch_body(self, hop: ce.Hop) -> None:
        cap = self.capture.max_body_bytes
        try:
            answer = await self.capture._call(
                "Network.getResponseBody", {"requestId": hop.request_id}, self.id
            )
            text = str(answer.get("body", ""))
            data = base64.b64decode(text) if answer.get("base64Encoded") else text.encode()
            hop.body_size = max(len(data), hop.data_length)
            hop.body = data[:cap]
            hop.body_state = ce.TRUNCATED if hop.body_size > cap else ce.CAPTURED
            if hop.is_event_stream and hop.body_state == ce.CAPTURED:
                hop.body_state = ce.STREAMED
        except CdpError as error:
            source = await self._document_source(hop)
            if source is not None:
                hop.body_size = max(len(source), hop.data_length)
                hop.body = source[:cap]
                hop.body_state = ce.TRUNCATED if hop.body_size > cap else ce.CAPTURED
                return
            hop.body_size = hop.data_length or None
            if hop.data_length > cap:
                hop.body_state = ce.TRUNCATED  # over the cap and not kept by Chrome either: the size is known
            else:
                hop.body_state = ce.EVICTED
                self.capture.stats.bodies_evicted += 1
                if not any(m in str(error).lower() for m in _EVICTED_MESSAGES):
                    log.debug("getResponseBody of %s: %s", hop.url, error)
        finally:
            if hop.body_state == ce.TRUNCATED:
                self.capture.stats.bodies_truncated += 1
            hop.body_pending = False
            self.capture._settle(hop)

    async def _document_source(self, hop: ce.Hop) -> bytes | None:
        """A document's body from the frame itself (`Page.getResourceContent`), when Network kept none: a tab
        opened with its URL answers before Network is on in it."""
        if hop.resource_type != "Document" or not hop.frame_id or not self.has_frames:
            return None
        try:
            answer = await self.capture._call(
                "Page.getResourceContent", {"frameId": hop.frame_id, "url": hop.url}, self.id
            )
        except CdpError:
            return None
        text = str(answer.get("content", ""))
        return base64.b64decode(text) if answer.get("base64Encoded") else text.encode()

    @property
    def has_frames(self) -> bool:
        return self.target.get("type") in ("page", "iframe", "webview")

    def loading_failed(self, p: dict[str, Any]) -> None:
        hop = self._hop(p["requestId"])
        if hop is None or hop.done or hop.emitted:
            return
        error = str(p.get("errorText") or "failed")
        if p.get("blockedReason"):
            error += f" (blocked: {p['blockedReason']})"
        elif p.get("corsErrorStatus"):
            error += f" (cors: {p['corsErrorStatus'].get('corsError')})"
        hop.end_timestamp = float(p["timestamp"])
        self._fail(hop, error, aborted=bool(p.get("canceled")) or "ERR_ABORTED" in error)

    def _fail(self, hop: ce.Hop, error: str, *, aborted: bool) -> None:
        hop.error = error
        if hop.is_event_stream and (hop.sse_events or hop.data_length):
            self._stream_body(hop)  # an EventSource closed by the page ends this way
            if aborted and hop.sse_events:
                hop.error = None
        elif hop.response is not None or aborted:
            # Cut off before the body was whole: by a navigation (net::ERR_ABORTED), the page, the network.
            hop.body_state = ce.LOST
            hop.body_size = hop.data_length or None
        else:
            hop.body_state = ce.NONE
        self._finish(hop)

    def frame_navigated(self, p: dict[str, Any]) -> None:
        """A frame committed a new document: what its old document still had in flight is abandoned, and
        Chrome reports no loadingFailed for it."""
        frame = p.get("frame") or {}
        self._abandon(frame.get("id", ""), keep_loader=frame.get("loaderId", ""))

    def frame_detached(self, p: dict[str, Any]) -> None:
        if p.get("reason") != "swap":  # a swap moves the frame to another process: its session goes on
            self._abandon(p.get("frameId", ""), keep_loader=None)

    def _abandon(self, frame_id: str, keep_loader: str | None) -> None:
        if not frame_id:
            return
        for chain in list(self.capture.chains.values()):
            for hop in list(chain.hops):
                if hop.done or hop.frame_id != frame_id or (keep_loader and hop.loader_id == keep_loader):
                    continue
                if hop.request_id == hop.loader_id:
                    continue  # a document request: it ends with its own events
                if hop.session_id == self.id:
                    self._fail(hop, "net::ERR_ABORTED (the page navigated away)", aborted=True)

    # -- WebSockets

    def ws_created(self, p: dict[str, Any]) -> None:
        self.sockets[p["requestId"]] = ce.Socket(request_id=p["requestId"], url=p["url"])
        self.capture.stats.pending += 1
        self.capture.stats.websockets += 1

    def ws_will_send(self, p: dict[str, Any]) -> None:
        sock = self.sockets.get(p["requestId"])
        if sock is not None:
            sock.wall_time = float(p.get("wallTime") or time.time())
            sock.timestamp = float(p["timestamp"])
            sock.request_headers = (p.get("request") or {}).get("headers")

    def ws_response(self, p: dict[str, Any]) -> None:
        sock = self.sockets.get(p["requestId"])
        if sock is not None:
            sock.response = p.get("response")

    def _ws_frame(self, p: dict[str, Any], sender: str) -> None:
        sock = self.sockets.get(p["requestId"])
        if sock is None:
            return
        frame = p.get("response") or {}
        opcode = int(frame.get("opcode", 1))
        if opcode not in (1, 2):
            return  # control frames (close, ping, pong)
        payload = str(frame.get("payloadData", ""))
        at = p.get("timestamp")
        at_wall = time.time()
        if at is not None and sock.timestamp is not None and sock.wall_time is not None:
            at_wall = sock.wall_time + float(at) - sock.timestamp
        sock.wire_bytes += len(base64.b64decode(payload)) if opcode == 2 else len(payload.encode())
        sock.messages.append(
            {
                "from": sender,
                "type": "text" if opcode == 1 else "binary",
                "at": ce.iso(at_wall),
                "content": payload,
            }
        )

    def ws_sent(self, p: dict[str, Any]) -> None:
        self._ws_frame(p, "client")

    def ws_received(self, p: dict[str, Any]) -> None:
        self._ws_frame(p, "server")

    def ws_error(self, p: dict[str, Any]) -> None:
        sock = self.sockets.get(p["requestId"])
        if sock is not None:
            sock.error = str(p.get("errorMessage") or "websocket error")

    def ws_closed(self, p: dict[str, Any]) -> None:
        sock = self.sockets.pop(p["requestId"], None)
        if sock is not None:
            sock.end_timestamp = float(p["timestamp"])
            self.capture._emit_socket(sock)

    # -- the end of the session

    def flush(self) -> None:
        """Sends what this session still holds (the target went away, or the capture is closing): its
        unfinished requests as lost, its open sockets as they are."""
        self.closed = True
        for chain in list(self.capture.chains.values()):
            for hop in list(chain.hops):
                if hop.emitted or hop.session_id != self.id:
                    continue
                if not hop.done:
                    hop.error = hop.error or "target closed before the request finished"
                    if hop.is_event_stream:
                        self._stream_body(hop)
                    else:
                        hop.body_state = ce.LOST if hop.response is not None else ce.NONE
                hop.body_pending = hop.post_pending = False
                hop.done = True
                hop.has_extra_info = False
                self.capture._settle(hop)
        for sock in list(self.sockets.values()):
            self.capture._emit_socket(sock)
        self.sockets.clear()


_HANDLERS: dict[str, Callable[[_Session, dict[str, Any]], None]] = {
    "Network.requestWillBeSent": _Session.request_will_be_sent,
    "Network.requestWillBeSentExtraInfo": _Session.request_extra,
    "Network.responseReceived": _Session.response_received,
    "Network.responseReceivedExtraInfo": _Session.response_extra,
    "Network.dataReceived": _Session.data_received,
    "Network.eventSourceMessageReceived": _Session.event_source_message,
    "Network.loadingFinished": _Session.loading_finished,
    "Network.loadingFailed": _Session.loading_failed,
    "Network.webSocketCreated": _Session.ws_created,
    "Network.webSocketWillSendHandshakeRequest": _Session.ws_will_send,
    "Network.webSocketHandshakeResponseReceived": _Session.ws_response,
    "Network.webSocketFrameSent": _Session.ws_sent,
    "Network.webSocketFrameReceived": _Session.ws_received,
    "Network.webSocketFrameError": _Session.ws_error,
    "Network.webSocketClosed": _Session.ws_closed,
    "Page.frameNavigated": _Session.frame_navigated,
    "Page.frameDetached": _Session.frame_detached,
}


class CdpCapture:
    """One browser's traffic, handed to `on_entry` row by row (see the module docstring)."""

    def __init__(
        self,
        browser_ws_url: str,
        on_entry: Callable[[dict[str, Any]], None],
        *,
        bodies: bool = True,
        max_body_bytes: int = 1_048_576,
    ) -> None:
        self.ws_url = browser_ws_url
        self.on_entry = on_entry
        self.bodies = bodies
        self.max_body_bytes = max_body_bytes
        self.stats = CaptureStats()
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._sessions: dict[str, _Session] = {}
        self._target_sessions: dict[str, str] = {}  # targetId -> the one session capturing it
        self._attaching: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = asyncio.Event()
        self._closing = False
        # (requestId, hop index) of rows sent: a request Chrome reports on two sessions (an out-of-process
        # iframe's document, reported by its parent and itself) is sent once.
        self._sent: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._waiting: dict[int, ce.Hop] = {}
        self.chains: dict[str, ce.Chain] = {}  # requestId -> its hops, whichever session reports them
        self._ticker: asyncio.Task[None] | None = None
        trace = os.environ.get("BUSYMATE_CDP_TRACE")  # a file to write every event to (debugging)
        self._trace = open(trace, "ab") if trace else None  # noqa: SIM115 (closed by _shutdown)

    # -- the connection

    async def start(self) -> None:
        """Connects, then attaches to every page there is and every page, frame and worker to come."""
        try:
            self._ws = await connect(self.ws_url, max_size=None, ping_interval=None, open_timeout=10)
        except (OSError, TimeoutError, WebSocketException) as error:
            raise CdpError(f"cannot connect to the browser at {self.ws_url}: {error}") from error
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")
        self._ticker = asyncio.create_task(self._tick(), name="cdp-extra-info-timer")
        await self._call("Target.setDiscoverTargets", {"discover": True})
        await self._call(
            "Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}
        )
        # Pages the browser-wide auto-attach did not pick up (older browsers attach new ones only).
        answer = await self._call("Target.getTargets")
        for info in answer.get("targetInfos", []):
            if info.get("type") == "page":
                await self._attach(info)

    async def _attach(self, info: dict[str, Any]) -> None:
        target_id = info["targetId"]
        if target_id in self._target_sessions or target_id in self._attaching:
            return
        self._attaching.add(target_id)
        try:
            await self._call("Target.attachToTarget", {"targetId": target_id, "flatten": True})
        except CdpError as error:
            log.debug("attach to %s: %s", info.get("url"), error)  # it went away meanwhile
        finally:
            self._attaching.discard(target_id)

    async def wait_closed(self) -> None:
        """Until the browser goes away (or `close`)."""
        await self._closed.wait()

    @property
    def pages(self) -> list[dict[str, Any]]:
        """The page targets being captured, oldest first: `{sessionId, targetId, url, title}`."""
        return [
            {
                "sessionId": s.id,
                "targetId": s.target.get("targetId"),
                "url": s.target.get("url"),
                "title": s.target.get("title"),
            }
            for s in self._sessions.values()
            if s.target.get("type") == "page"
        ]

    async def command(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """A raw CDP call; its `result`, or CdpError with the browser's message. Without `session_id`, a
        method of the browser's own domains (Browser, Target, SystemInfo, Storage...) goes to the browser and
        any other (Runtime, Page, DOM, Network...) to the page attached last, so `Runtime.evaluate` works
        as it would in that tab's DevTools console."""
        if session_id is None and method.partition(".")[0] not in _BROWSER_DOMAINS:
            pages = self.pages
            if not pages:
                raise CdpError(f"no page to run {method} on")
            session_id = pages[-1]["sessionId"]
        return await self._call(method, params, session_id)

    async def _call(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        if self._ws is None or self._closed.is_set():
            raise CdpError("not connected to the browser")
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        try:
            await self._ws.send(orjson.dumps(message).decode())
        except ConnectionClosed as error:
            self._calls.pop(call_id, None)
            raise CdpError("the browser connection closed") from error
        return await future

    async def close(self) -> None:
        """Detaches (the browser keeps running) after sending what is still held."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        # Bodies being read are read first: a detached session can answer nothing.
        pending = list(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=5)
        detaches = [
            asyncio.wait_for(self._call("Target.detachFromTarget", {"sessionId": s.id}), timeout=2)
            for s in self._sessions.values()
            if not s.closed
        ]
        await asyncio.gather(*detaches, return_exceptions=True)
        self._shutdown()
        if self._ws is not None:
            await self._ws.close()
        for task in (self._reader, self._ticker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _shutdown(self) -> None:
        if self._closed.is_set():
            return
        for session in list(self._sessions.values()):
            session.flush()
        self._sessions.clear()
        self.stats.sessions = 0
        for future in self._calls.values():
            if not future.done():
                future.set_exception(CdpError("the browser connection closed"))
        self._calls.clear()
        if self._trace is not None:
            self._trace.close()
            self._trace = None
        self._closed.set()

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                try:
                    message = orjson.loads(raw)
                    if self._trace is not None and message.get("method") != "Network.dataReceived":
                        self._trace.write(orjson.dumps(message)[:2000] + b"\n")
                    self._dispatch(message)
                except Exception:  # one bad event must not stop the capture
                    self.stats.errors += 1
                    log.exception("CDP message not handled")
        except ConnectionClosed:
            pass
        finally:
            self._shutdown()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            future = self._calls.pop(message["id"], None)
            if future is not None and not future.done():
                if "error" in message:
                    error = message["error"]
                    future.set_exception(CdpError(str(error.get("message", error))))
                else:
                    future.set_result(message.get("result") or {})
            return
        method = message.get("method", "")
        params = message.get("params") or {}
        if method == "Target.attachedToTarget":
            self._attached(params)
        elif method == "Target.detachedFromTarget":
            session = self._sessions.pop(params.get("sessionId", ""), None)
            if session is not None:
                self._target_sessions.pop(session.target.get("targetId", ""), None)
                session.flush()
                self.stats.sessions = len(self._sessions)
        elif method == "Target.targetInfoChanged":
            info = params.get("targetInfo") or {}
            session_id = self._target_sessions.get(info.get("targetId", ""))
            if session_id in self._sessions:
                self._sessions[session_id].target.update(info)
        elif method == "Target.targetCreated":
            info = params.get("targetInfo") or {}
            if info.get("type") == "page" and not info.get("attached"):
                self._spawn(self._attach_later(info))
        elif method.startswith(("Network.", "Page.")):
            session = self._sessions.get(message.get("sessionId", ""))
            if session is not None:
                session.handle(method, params)

    async def _attach_later(self, info: dict[str, Any]) -> None:
        """A new page the auto-attach has not taken within a moment (several tabs, windows opened by hand)."""
        await asyncio.sleep(0.5)
        if info["targetId"] not in self._target_sessions:
            await self._attach(info)

    def _attached(self, params: dict[str, Any]) -> None:
        session_id = params["sessionId"]
        info = params.get("targetInfo") or {}
        target_id = info.get("targetId", "")
        waiting = bool(params.get("waitingForDebugger"))
        if target_id in self._target_sessions or info.get("type") not in _CAPTURED_TYPES:
            # Already captured through another session (the browser's auto-attach and a page's both reach a
            # service worker), or nothing to capture: let it run, and leave.
            self._spawn(self._release(session_id, waiting))
            return
        session = _Session(self, session_id, info)
        self._sessions[session_id] = session
        self._target_sessions[target_id] = session_id
        self.stats.sessions = len(self._sessions)
        self.stats.targets += 1
        self._spawn(self._prepare(session, waiting))

    async def _noop(self) -> dict[str, Any]:
        return {}

    async def _release(self, session_id: str, waiting: bool) -> None:
        with contextlib.suppress(CdpError):
            if waiting:
                await self._call("Runtime.runIfWaitingForDebugger", None, session_id)
            await self._call("Target.detachFromTarget", {"sessionId": session_id})

    async def _prepare(self, session: _Session, waiting: bool) -> None:
        """Network on, its children auto-attached, then resumed: sent together, in that order, so nothing the
        target does after resuming is missed."""
        sid = session.id
        has_frames = session.has_frames
        calls = [
            self._call(
                "Network.enable",
                {"maxTotalBufferSize": MAX_TOTAL_BUFFER, "maxResourceBufferSize": MAX_RESOURCE_BUFFER},
                sid,
            ),
            self._call(
                "Network.configureDurableMessages",
                {"maxTotalBufferSize": DURABLE_TOTAL_BUFFER, "maxResourceBufferSize": MAX_RESOURCE_BUFFER},
                sid,
            ),
            self._call("Page.enable", None, sid) if has_frames else self._noop(),
            self._call(
                "Target.setAutoAttach",
                {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
                sid,
            ),
            self._call("Runtime.runIfWaitingForDebugger", None, sid),
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        names = ("Network.enable", "durable messages", "Page.enable", "Target.setAutoAttach", "resume")
        if isinstance(results[0], Exception):
            self.stats.errors += 1
        for method, result in zip(names, results, strict=True):
            if isinstance(result, Exception):
                log.debug(
                    "%s on %s (%s): %s", method, session.target.get("type"), session.target.get("url"), result
                )
        if waiting and isinstance(results[-1], Exception):
            log.warning("could not resume %s", session.target.get("url"))
        session.ready.set()

    async def open_page(self, url: str, *, timeout: float = 10.0) -> str:
        """Opens `url` in a new tab, captured from its first request (the tab is made blank, attached, then
        navigated: a tab created with its URL starts loading before Network is on in it). Its session id."""
        answer = await self._call("Target.createTarget", {"url": "about:blank"})
        target_id = str(answer["targetId"])
        deadline = asyncio.get_running_loop().time() + timeout
        while (session_id := self._target_sessions.get(target_id)) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise CdpError(f"the new tab for {url} was not attached within {timeout:.0f} s")
            await asyncio.sleep(0.02)
        await asyncio.wait_for(self._sessions[session_id].ready.wait(), timeout)
        await self._call("Page.navigate", {"url": url}, session_id)
        return session_id

    # -- rows

    def _spawn(self, coro: Any) -> None:
        # Started at once (up to its first wait), so a getResponseBody leaves before the next event is read.
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
        if not task.done():
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _settle(self, hop: ce.Hop) -> None:
        """Sends `hop` once it is ready; a done hop still waiting for ExtraInfo is looked at by `_tick`."""
        if hop.emitted or not hop.done:
            return
        if not hop.ready:
            if not hop.body_pending and not hop.post_pending:
                self._waiting[id(hop)] = hop
            return
        self._waiting.pop(id(hop), None)
        self._emit(hop)

    async def _tick(self) -> None:
        sweep = 0
        while True:
            await asyncio.sleep(EXTRA_INFO_WAIT / 4)
            now = asyncio.get_running_loop().time()
            for hop in list(self._waiting.values()):
                if hop.emitted:
                    self._waiting.pop(id(hop), None)
                elif now - hop.done_at >= EXTRA_INFO_WAIT:
                    self._waiting.pop(id(hop), None)
                    self.stats.extra_info_missing += 1
                    self._emit(hop)
            sweep += 1
            if sweep % 40 == 0:  # about every 10 s: ExtraInfo of requests long gone (or never reported)
                for request_id, chain in list(self.chains.items()):
                    if now - chain.born > 60 and all(h.emitted for h in chain.hops):
                        self.chains.pop(request_id, None)

    def _emit(self, hop: ce.Hop) -> None:
        hop.emitted = True
        self.stats.pending = max(0, self.stats.pending - 1)
        chain = self.chains.get(hop.request_id)
        # Dropped when all sent, unless an announced ExtraInfo may still come (then `_tick` drops it later).
        if (
            chain is not None
            and all(h.emitted for h in chain.hops)
            and len(chain.response_extras) >= sum(1 for h in chain.hops if h.has_extra_info)
        ):
            self.chains.pop(hop.request_id, None)
        key = (hop.request_id, hop.index)
        if key in self._sent:
            return
        self._sent[key] = None
        if len(self._sent) > 10_000:
            self._sent.popitem(last=False)
        self._deliver(ce.hop_entry(hop, self.max_body_bytes))

    def _emit_socket(self, sock: ce.Socket) -> None:
        self.stats.pending = max(0, self.stats.pending - 1)
        self._deliver(ce.socket_entry(sock, self.max_body_bytes, self.bodies))

    def _deliver(self, entry: dict[str, Any]) -> None:
        self.stats.captured += 1
        try:
            self.on_entry(entry)
        except Exception:
            self.stats.errors += 1
            log.exception("on_entry failed")


# -- finding and starting a browser ----------------------------------------------------------------------


def browser_ws_url(http_url: str) -> str:
    """The browser's WebSocket endpoint from a DevTools HTTP address (`http://127.0.0.1:9222`), read from
    `/json/version`. Raises CdpError when nothing answers there."""
    base = http_url.rstrip("/")
    if base.startswith(("ws://", "wss://")):
        return base
    if "://" not in base:
        base = "http://" + base
    try:
        with urllib.request.urlopen(base + "/json/version", timeout=5) as response:  # noqa: S310 (a local URL)
            info = json.loads(response.read())
    except (OSError, ValueError) as error:
        raise CdpError(
            f"no DevTools endpoint at {base} ({error}); start the browser with --remote-debugging-port=9222"
        ) from error
    url = info.get("webSocketDebuggerUrl") if isinstance(info, dict) else None
    if not url:
        raise CdpError(f"{base}/json/version names no webSocketDebuggerUrl")
    return str(url)


def find_browser() -> str | None:
    """The system's Chromium or Chrome, if any."""
    for name in _BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


async def launch_chromium(
    executable: str | None = None,
    *,
    headless: bool = False,
    user_data_dir: Path | None = None,
    extra_args: list[str] = [],  # noqa: B006 (read only)
    timeout: float = 20.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Starts Chromium with `--remote-debugging-port=0` and returns the process and its browser WebSocket
    URL (read from `DevToolsActivePort` in the profile). A fresh temporary profile when `user_data_dir` is
    None (left in place: the caller removes it once the browser is gone)."""
    exe = executable or find_browser()
    if not exe:
        raise CdpError("no Chromium or Chrome found; install chromium or pass the browser's path")
    profile = user_data_dir or Path(tempfile.mkdtemp(prefix="bmc-chromium-"))
    profile.mkdir(parents=True, exist_ok=True)
    active_port = profile / "DevToolsActivePort"
    active_port.unlink(missing_ok=True)
    args = [
        exe,
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
    ]
    if headless:
        args.append("--headless=new")
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--no-sandbox" not in extra_args:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    args += [*extra_args, "about:blank"]
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed below; Chromium keeps its own copy)
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr.seek(0)
                tail = stderr.read()[-2000:].decode(errors="replace").strip()
                raise CdpError(f"{exe} exited with code {process.returncode}: {tail}")
            with contextlib.suppress(OSError):
                lines = active_port.read_text().split("\n")
                if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                    return process, f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
            await asyncio.sleep(0.05)
        raise CdpError(f"{exe} did not open its DevTools port within {timeout:.0f} s")
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    finally:
        stderr.close()
