"""A finished mitmproxy flow as one row for `ingest_entries` (docs/traffic.md), bodies capped.

Bodies are stored decoded (gzip, br, zstd and deflate undone, as Proxyman shows them) when mitmproxy can
decode them, else as they came; at most `cap` bytes are sent, with the full size and a truncation flag. A
streamed body (server-sent events, a large download) is never held whole: `BodyTap` keeps its first `cap`
bytes while the chunks pass straight to the client.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
from mitmproxy import http

TAP = "busymate.tap"  # flow.metadata keys
WS_KINDS = {True: "text", False: "binary"}


class BodyTap:
    """A `stream` callable for mitmproxy: forwards every chunk and keeps the first `cap` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.size = 0

    def __call__(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        room = self.cap - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
        return chunk


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def _headers(headers: http.Headers) -> list[list[str]]:
    return [
        [k.decode("latin-1"), v.decode("utf-8", "surrogateescape").encode("utf-8", "replace").decode()]
        for k, v in headers.fields
    ]


def _body(message: http.Message, cap: int, tap: BodyTap | None) -> tuple[str | None, int, bool, int]:
    """(base64 of at most cap bytes, full decoded size, truncated, size on the wire)."""
    if tap is not None:
        raw = bytes(tap.kept)
        return (base64.b64encode(raw).decode() if raw else None), tap.size, tap.size > len(raw), tap.size
    wire = message.raw_content or b""
    if not wire:
        return None, 0, False, 0
    try:
        content = message.get_content(strict=False) or b""
    except ValueError:
        content = wire
    kept = content[:cap]
    return base64.b64encode(kept).decode(), len(content), len(content) > cap, len(wire)


def _websocket_transcript(flow: http.HTTPFlow, cap: int) -> tuple[str | None, int, bool]:
    """The messages of a WebSocket as a JSON array (text as text, binary as base64)."""
    assert flow.websocket is not None
    data = orjson.dumps(
        [
            {
                "from": "client" if m.from_client else "server",
                "type": WS_KINDS[m.is_text],
                "at": _iso(m.timestamp),
                "content": m.text if m.is_text else base64.b64encode(m.content).decode(),
            }
            for m in flow.websocket.messages
        ]
    )
    kept = data[:cap]
    return base64.b64encode(kept).decode(), len(data), len(data) > cap


def entry_row(flow: http.HTTPFlow, cap: int) -> tuple[dict[str, Any], int]:
    """The row for `flow` and about how many bytes it holds (for batching)."""
    req = flow.request
    res = flow.response
    path, _, query = req.path.partition("?")
    scheme = req.scheme or "https"  # a CONNECT (authority form) has none: its tunnel is almost always TLS
    if flow.websocket is not None:
        scheme = "wss" if scheme == "https" else "ws"
    request_body, request_body_size, request_truncated, request_size = _body(
        req, cap, flow.metadata.get(TAP + ".req")
    )
    row: dict[str, Any] = {
        "id": flow.id,
        "captured_at": _iso(req.timestamp_start),
        "method": req.method,
        "scheme": scheme,
        "host": req.pretty_host or req.host,
        "port": req.port,
        "path": path or "/",
        "query": query or None,
        "http_version": req.http_version,
        "request_content_type": req.headers.get("content-type"),
        "request_headers": _headers(req.headers),
        "request_body_b64": request_body,
        "request_body_size": request_body_size,
        "request_body_truncated": request_truncated,
        "request_size": request_size,
    }
    size = len(request_body or "")
    if res is not None:
        if flow.websocket is not None:
            body, body_size, truncated = _websocket_transcript(flow, cap)
            wire = sum(len(m.content) for m in flow.websocket.messages)
            end = flow.websocket.timestamp_end or res.timestamp_end
        else:
            body, body_size, truncated, wire = _body(res, cap, flow.metadata.get(TAP + ".res"))
            end = res.timestamp_end
        row.update(
            status=res.status_code,
            response_content_type=res.headers.get("content-type"),
            response_headers=_headers(res.headers),
            response_body_b64=body,
            response_body_size=body_size,
            response_body_truncated=truncated,
            response_size=wire,
            ttfb_ms=_ms(req.timestamp_start, res.timestamp_start),
            duration_ms=_ms(req.timestamp_start, end),
        )
        size += len(body or "")
    if flow.error is not None:
        row["error"] = flow.error.msg
        if res is None:
            row["duration_ms"] = _ms(req.timestamp_start, flow.error.timestamp)
    return row, size


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, round((end - start) * 1000, 3))
