"""Turning Chrome DevTools Protocol network events into `ingest_entries` rows (docs/traffic.md).

Pure functions and small records, no I/O: `busymate.cdp_capture` feeds them the events of each CDP session.
One `Hop` is one request/response pair: a redirect chain shares Chrome's `requestId`, so each hop is its own
`Hop` (and its own entry), numbered in the order Chrome reported them. The `*ExtraInfo` events of a chain are
matched to its hops by that number, whichever came first.
"""

from __future__ import annotations

import base64
import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

# Why a body is what it is (the entries' `*_body_state` columns).
CAPTURED = "captured"
TRUNCATED = "truncated"
EVICTED = "evicted"
STREAMED = "streamed"
LOST = "lost"
SKIPPED = "skipped"
NONE = "none"

# The schemes an entry can have; data:, blob:, chrome:, about: and the like are not traffic.
NETWORK_SCHEMES = {"http", "https", "ws", "wss"}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_PROTOCOLS = {
    "http/0.9": "HTTP/0.9",
    "http/1.0": "HTTP/1.0",
    "http/1.1": "HTTP/1.1",
    "h2": "HTTP/2.0",
    "h2c": "HTTP/2.0",
    "spdy": "HTTP/2.0",
    "h3": "HTTP/3",
    "quic": "HTTP/3",
}


@dataclass
class Hop:
    """One request of a chain (a redirect hop or the final request) and what is known of it so far."""

    request_id: str
    index: int
    url: str
    method: str
    headers: dict[str, Any]  # the request's headers as the renderer saw them (no cookies)
    wall_time: float  # seconds since the epoch: when the request was issued
    timestamp: float  # Chrome's monotonic clock (seconds) at the same moment
    resource_type: str = ""
    post_data: bytes | None = None
    post_state: str = NONE
    post_pending: bool = False
    response: dict[str, Any] | None = None
    has_extra_info: bool = False
    request_extra: dict[str, Any] | None = None
    response_extra: dict[str, Any] | None = None
    data_length: int = 0  # decoded body bytes seen in dataReceived
    encoded_length: int | None = None  # bytes on the wire (headers included), from loadingFinished
    end_timestamp: float | None = None
    body: bytes | None = None
    body_size: int | None = None
    body_state: str = NONE
    body_pending: bool = False
    error: str | None = None
    done: bool = False  # finished, failed or redirected: nothing more will come but ExtraInfo
    emitted: bool = False
    done_at: float = 0.0  # the event loop's time when it was done (to stop waiting for ExtraInfo)
    sse_events: list[dict[str, Any]] = field(default_factory=list)
    session_id: str = ""  # the session that reported it last (the one to ask for its body)
    frame_id: str = ""
    loader_id: str = ""

    @property
    def ready(self) -> bool:
        """Done, its bodies read, and its ExtraInfo in (when Chrome said it would send some)."""
        if not self.done or self.body_pending or self.post_pending:
            return False
        return not self.has_extra_info or self.response_extra is not None

    @property
    def is_event_stream(self) -> bool:
        mime = (self.response or {}).get("mimeType") or ""
        return bool(self.sse_events) or mime.split(";")[0].strip().lower() == "text/event-stream"


@dataclass
class Chain:
    """The hops of one `requestId` and the ExtraInfo events that came for it, in order."""

    born: float = 0.0
    hops: list[Hop] = field(default_factory=list)
    request_extras: list[dict[str, Any]] = field(default_factory=list)
    response_extras: list[dict[str, Any]] = field(default_factory=list)

    def attach_extras(self) -> None:
        """Gives each hop the ExtraInfo of its rank (they can arrive before or after the main events)."""
        for i, hop in enumerate(self.hops):
            if hop.request_extra is None and i < len(self.request_extras):
                hop.request_extra = self.request_extras[i]
            if hop.response_extra is None and i < len(self.response_extras):
                hop.response_extra = self.response_extras[i]


@dataclass
class Socket:
    """A WebSocket: its handshake and every frame, one entry when it closes."""

    request_id: str
    url: str
    wall_time: float | None = None
    timestamp: float | None = None
    request_headers: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    wire_bytes: int = 0
    error: str | None = None
    end_timestamp: float | None = None


# -- small conversions ---------------------------------------------------------------------------------------


def iso(epoch_seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def header_pairs(headers: dict[str, Any] | None) -> list[list[str]]:
    """CDP's header object as `[name, value]` pairs: Chrome joins repeated headers (Set-Cookie) with
    newlines, which become repeated pairs again. HTTP/2 pseudo-headers (`:method`, `:path`...) are left out,
    as the proxy stores none."""
    pairs: list[list[str]] = []
    for name, value in (headers or {}).items():
        if name.startswith(":"):
            continue
        for part in str(value).split("\n"):
            pairs.append([name, part])
    return pairs


def parse_headers_text(text: str) -> tuple[int | None, list[list[str]]]:
    """The status and headers of a raw HTTP/1.x response head (`responseReceivedExtraInfo.headersText`), in
    wire order with repeats."""
    lines = text.replace("\r\n", "\n").split("\n")
    status: int | None = None
    if lines and lines[0].upper().startswith("HTTP/"):
        parts = lines[0].split(" ", 2)
        if len(parts) > 1 and parts[1].isdigit():
            status = int(parts[1])
        lines = lines[1:]
    pairs: list[list[str]] = []
    for line in lines:
        if not line.strip():
            continue
        if line[0] in " \t" and pairs:  # an obsolete folded continuation line
            pairs[-1][1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep:
            pairs.append([name.strip(), value.strip()])
    return status, pairs


def header_value(pairs: list[list[str]], name: str) -> str | None:
    lowered = name.lower()
    for key, value in pairs:
        if key.lower() == lowered:
            return value
    return None


def http_version(protocol: str | None) -> str | None:
    if not protocol:
        return None
    return _PROTOCOLS.get(protocol.lower(), protocol.upper())


def har_timings(hop: Hop) -> dict[str, float]:
    """HAR 1.2 timings (ms; -1 where a phase did not happen) from `response.timing`, as Chrome DevTools'
    HAR export computes them: `blocked` is the queueing before Chrome started the request plus the stall
    before the first phase, `connect` includes `ssl`, `wait` is the server's time to first byte, `receive`
    the body."""
    timing = (hop.response or {}).get("timing")
    end = hop.end_timestamp
    result = {"blocked": -1.0, "dns": -1.0, "connect": -1.0, "ssl": -1.0, "send": 0.0, "wait": 0.0}
    result["receive"] = 0.0
    if not timing:
        if end is not None:
            result["wait"] = round(max(0.0, (end - hop.timestamp) * 1000), 3)
        return result
    request_time = float(timing.get("requestTime") or hop.timestamp)

    def phase(start: str, stop: str) -> float:
        a, b = float(timing.get(start, -1)), float(timing.get(stop, -1))
        return round(b - a, 3) if a >= 0 and b >= 0 else -1.0

    queued = max(0.0, (request_time - hop.timestamp) * 1000)
    starts = [float(timing.get(k, -1)) for k in ("dnsStart", "connectStart", "sendStart")]
    first = min((s for s in starts if s >= 0), default=0.0)
    result["blocked"] = round(queued + first, 3)
    result["dns"] = phase("dnsStart", "dnsEnd")
    result["connect"] = phase("connectStart", "connectEnd")
    result["ssl"] = phase("sslStart", "sslEnd")
    send = phase("sendStart", "sendEnd")
    result["send"] = max(0.0, send)
    headers_end = float(timing.get("receiveHeadersEnd", -1))
    send_end = float(timing.get("sendEnd", -1))
    result["wait"] = round(max(0.0, headers_end - send_end), 3) if headers_end >= 0 and send_end >= 0 else 0.0
    if end is not None and headers_end >= 0:
        result["receive"] = round(max(0.0, (end - request_time) * 1000 - headers_end), 3)
    return result


def ttfb_ms(hop: Hop) -> float | None:
    """From the request being issued to the response head (what the entries call time to first byte)."""
    timing = (hop.response or {}).get("timing")
    if timing and float(timing.get("receiveHeadersEnd", -1)) >= 0:
        at = float(timing["requestTime"]) + float(timing["receiveHeadersEnd"]) / 1000
        return round(max(0.0, (at - hop.timestamp) * 1000), 3)
    return None


def _split_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return {
        "scheme": scheme,
        "host": parts.hostname or "",
        "port": port or _DEFAULT_PORTS.get(scheme, 443),
        "path": parts.path or "/",
        "query": parts.query or None,
    }


def is_network_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in NETWORK_SCHEMES


def _cap(data: bytes | None, cap: int) -> tuple[str | None, bool]:
    if data is None:
        return None, False
    return base64.b64encode(data[:cap]).decode(), len(data) > cap


# -- entries -----------------------------------------------------------------------------------------------


def hop_entry(hop: Hop, cap: int) -> dict[str, Any]:
    """The `ingest_entries` row for a finished hop."""
    response = hop.response or {}
    extra_req = hop.request_extra or {}
    extra_res = hop.response_extra or {}
    request_headers = header_pairs(extra_req.get("headers") or response.get("requestHeaders") or hop.headers)
    status: int | None = response.get("status")
    if response.get("headersText"):
        text_status, response_headers = parse_headers_text(str(response["headersText"]))
        status = text_status or status
    else:
        response_headers = header_pairs(response.get("headers"))
    if extra_res:
        if extra_res.get("headersText"):
            text_status, response_headers = parse_headers_text(str(extra_res["headersText"]))
            status = text_status or status
        elif extra_res.get("headers"):
            response_headers = header_pairs(extra_res["headers"])
        if extra_res.get("statusCode"):
            status = int(extra_res["statusCode"])
    request_b64, request_truncated = _cap(hop.post_data, cap)
    response_b64, response_truncated = _cap(hop.body, cap)
    body_state = hop.body_state
    if body_state == CAPTURED and hop.body_size is not None and hop.body_size > cap:
        body_state = TRUNCATED
    post_state = hop.post_state
    if post_state == CAPTURED and request_truncated:
        post_state = TRUNCATED
    duration = None
    if hop.end_timestamp is not None:
        duration = round(max(0.0, (hop.end_timestamp - hop.timestamp) * 1000), 3)
    entry: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "captured_at": iso(hop.wall_time),
        "method": hop.method,
        **_split_url(hop.url),
        "status": status,
        "http_version": http_version(response.get("protocol")),
        "duration_ms": duration,
        "ttfb_ms": ttfb_ms(hop),
        "request_size": len(hop.post_data or b""),
        "response_size": hop.encoded_length if hop.encoded_length is not None else None,
        "request_headers": request_headers,
        "response_headers": response_headers,
        "request_content_type": header_value(request_headers, "content-type"),
        "response_content_type": header_value(response_headers, "content-type") or response.get("mimeType"),
        "request_body_b64": request_b64,
        "request_body_size": len(hop.post_data) if hop.post_data is not None else None,
        "request_body_truncated": request_truncated,
        "request_body_state": post_state,
        "response_body_b64": response_b64,
        "response_body_size": hop.body_size,
        "response_body_truncated": response_truncated or body_state == TRUNCATED,
        "response_body_state": body_state,
        "error": hop.error,
        "timings": har_timings(hop),
    }
    if entry["response_size"] is None and hop.response is not None:
        entry["response_size"] = hop.data_length
    return entry


def socket_entry(sock: Socket, cap: int, bodies: bool) -> dict[str, Any]:
    """A WebSocket's row: the handshake (status 101) with its messages as a JSON array in the response
    body (`from` client|server, `type` text|binary, `at`, `content`; binary as base64), as the proxy stores
    them."""
    response = sock.response or {}
    request_headers = header_pairs(response.get("requestHeaders") or sock.request_headers)
    if response.get("headersText"):
        status, response_headers = parse_headers_text(str(response["headersText"]))
    else:
        status, response_headers = None, header_pairs(response.get("headers"))
    status = status or response.get("status")
    transcript = orjson.dumps(sock.messages)
    body_b64, truncated = _cap(transcript, cap) if bodies else (None, False)
    state = (TRUNCATED if truncated else CAPTURED) if bodies else SKIPPED
    duration = None
    if sock.end_timestamp is not None and sock.timestamp is not None:
        duration = round(max(0.0, (sock.end_timestamp - sock.timestamp) * 1000), 3)
    wall = sock.wall_time if sock.wall_time is not None else datetime.datetime.now(datetime.UTC).timestamp()
    return {
        "id": str(uuid.uuid4()),
        "captured_at": iso(wall),
        "method": "GET",
        **_split_url(sock.url),
        "status": status,
        "http_version": "HTTP/1.1",
        "duration_ms": duration,
        "ttfb_ms": None,
        "request_size": 0,
        "response_size": sock.wire_bytes,
        "request_headers": request_headers,
        "response_headers": response_headers,
        "request_content_type": None,
        "response_content_type": None,
        "request_body_b64": None,
        "request_body_size": None,
        "request_body_truncated": False,
        "request_body_state": NONE,
        "response_body_b64": body_b64,
        "response_body_size": len(transcript) if bodies else None,
        "response_body_truncated": truncated,
        "response_body_state": state,
        "error": sock.error,
    }


def sse_body(events: list[dict[str, Any]]) -> bytes:
    """Server-sent events seen by an EventSource written back as a `text/event-stream` body."""
    out: list[str] = []
    for event in events:
        if event.get("eventName") and event["eventName"] != "message":
            out.append(f"event: {event['eventName']}\n")
        if event.get("eventId"):
            out.append(f"id: {event['eventId']}\n")
        for line in str(event.get("data", "")).split("\n"):
            out.append(f"data: {line}\n")
        out.append("\n")
    return "".join(out).encode()
