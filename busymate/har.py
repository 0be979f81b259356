"""HAR 1.2 out, the pure part: one captured entry row as a HAR entry, secrets redacted by default.

Shared by `busymate export --har` (cli/har.py, which streams a file) and the MCP server's `export_har`
(functions/mcp_server/analysis_tools.py, which also passes every value through BusyBro's redaction). No I/O
here: rows in, dicts out. The entries look like the dashboard's (dashboard/src/detail/har.tsx): the same
fields, the same redaction, `_busymate: {id, device_uuid, source}`; WebSocket transcripts become Chrome's
`_webSocketMessages`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_plus

REDACTED = "<redacted>"  # what the dashboard writes in place of a secret
META_COLUMNS = (
    "id,workspace_id,device_uuid,source,captured_at,method,scheme,host,port,path,query,http_version,status,"
    "request_content_type,response_content_type,request_size,response_size,duration_ms,ttfb_ms,error,"
    "request_headers,response_headers,request_body_size,response_body_size,request_body_truncated,"
    "response_body_truncated"
)  # the dashboard's META_COLUMNS (dashboard/src/detail/model.ts)
STATE_COLUMNS = "request_body_state,response_body_state"
KEPT_STATES = ("evicted", "streamed", "lost", "skipped")  # why a body is missing: kept in `_busymate`
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
_SECRET_HEADER_RE = re.compile(r"token|secret|apikey|api-key|api_key|session|password")
_SECRET_PARAMS = frozenset(
    [
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "api_key",
        "apikey",
        "api-key",
        "key",
        "secret",
        "client_secret",
        "signature",
        "sig",
        "code",
        "password",
        "passwd",
        "pwd",
        "session",
        "sessionid",
        "session_id",
        "auth",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    ]
)
_SECRET_PARAM_RE = re.compile(r"token|secret|password|passwd|session|apikey|api_key|api-key|signature")


def parse_time(value: object) -> datetime | None:
    """An ISO timestamp from the server (zone-less means UTC); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# -- redaction --


def is_secret_header(name: str) -> bool:
    """Headers whose value is a credential (the dashboard's isSecretHeader; inspect_requests' list)."""
    n = name.lower()
    return n in _SECRET_HEADERS or bool(_SECRET_HEADER_RE.search(n))


def is_secret_param(name: str) -> bool:
    """Query parameters that carry credentials (access_token, api_key, sig, code, password, ...)."""
    n = name.lower()
    return n in _SECRET_PARAMS or bool(_SECRET_PARAM_RE.search(n))


def _redacted_query(query: str | None, include_secrets: bool) -> str | None:
    """The query with secret parameters' values replaced (percent-encoded, so the URL stays a URL)."""
    if not query or include_secrets:
        return query
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        parts.append(f"{name}={quote(REDACTED)}" if eq and is_secret_param(unquote_plus(name)) else part)
    return "&".join(parts)


# -- bodies --


def body_bytes(value: object) -> bytes | None:
    """A body as bytes: PostgREST's bytea (`\\x` and hex), bytes as they are; None when there is none."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        if value.startswith("\\x"):
            return bytes.fromhex(value[2:])
        return base64.b64decode(value)
    raise TypeError(f"a body is bytes or a string, not {type(value).__name__}")


def bytes_to_text(data: bytes) -> str | None:
    """The bytes as UTF-8 text, or None when they are binary (the dashboard's bytesToText rule)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    for ch in text[:65536]:
        c = ord(ch)
        if c < 32 and c not in (9, 10, 12, 13, 27):
            return None
    return text


def _body_fields(data: bytes | None) -> dict[str, str]:
    if not data:
        return {}
    text = bytes_to_text(data)
    if text is not None:
        return {"text": text}
    return {"text": base64.b64encode(data).decode(), "encoding": "base64"}


# -- export: one entry --


def _headers(value: object) -> list[tuple[str, str]]:
    if isinstance(value, list):
        return [(str(p[0]), str(p[1])) for p in value if isinstance(p, list | tuple) and len(p) == 2]
    if isinstance(value, dict):
        return [(str(k), str(v)) for k, v in value.items()]
    return []


def _pairs(headers: Sequence[tuple[str, str]], include_secrets: bool) -> list[dict[str, str]]:
    return [
        {"name": n, "value": v if include_secrets or not is_secret_header(n) else REDACTED}
        for n, v in headers
    ]


def _request_cookies(headers: Sequence[tuple[str, str]], include_secrets: bool) -> list[dict[str, str]]:
    found = []
    for name, value in headers:
        if name.lower() != "cookie":
            continue
        for part in value.split(";"):
            key, eq, val = part.partition("=")
            if eq and key.strip():
                found.append({"name": key.strip(), "value": val.strip() if include_secrets else REDACTED})
    return found


def _response_cookies(headers: Sequence[tuple[str, str]], include_secrets: bool) -> list[dict[str, str]]:
    found = []
    for name, value in headers:
        if name.lower() != "set-cookie":
            continue
        key, eq, val = value.split(";")[0].partition("=")
        if eq and key.strip():
            found.append({"name": key.strip(), "value": val.strip() if include_secrets else REDACTED})
    return found


def _query_string(query: str | None, include_secrets: bool) -> list[dict[str, str]]:
    found = []
    for part in (query or "").split("&"):
        if not part:
            continue
        key, eq, val = part.partition("=")
        name, value = unquote_plus(key), unquote_plus(val)
        if eq and not include_secrets and is_secret_param(name):
            value = REDACTED
        found.append({"name": name, "value": value})
    return found


def full_url(row: Mapping[str, Any], query: str | None) -> str:
    """scheme://host[:port]path[?query], the port left out when it is the scheme's default."""
    scheme, host = str(row.get("scheme") or "https"), str(row.get("host") or "")
    default = 443 if scheme in ("https", "wss") else 80
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = row.get("port")
    at = f":{port}" if port is not None and port != default else ""
    return f"{scheme}://{host}{at}{row.get('path') or '/'}{f'?{query}' if query else ''}"


def har_time(value: object) -> str:
    """An ISO 8601 time in UTC with a Z: milliseconds like the dashboard's, microseconds when it has them (so
    an entry exported and imported again keeps its exact captured_at, which is part of its key)."""
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError(f"not a time: {value!r}")
    parsed = parsed.astimezone(UTC)
    spec = "milliseconds" if parsed.microsecond % 1000 == 0 else "microseconds"
    return str(parsed.replace(tzinfo=None).isoformat(timespec=spec)) + "Z"


def number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def websocket_messages(transcript: bytes | None) -> list[dict[str, Any]] | None:
    """The proxy's WebSocket transcript (a JSON array of {from, type, at, content}) as Chrome's
    `_webSocketMessages` ({type: send|receive, time: epoch seconds, opcode: 1 text|2 binary, data}); None when
    the body is not one (truncated, or not a transcript)."""
    if not transcript:
        return None
    try:
        items = json.loads(transcript)
    except ValueError:
        return None
    if not isinstance(items, list):
        return None
    messages = []
    for item in items:
        if not isinstance(item, dict) or item.get("from") not in ("client", "server"):
            return None
        at = parse_time(item.get("at"))
        messages.append(
            {
                "type": "send" if item["from"] == "client" else "receive",
                "time": at.timestamp() if at is not None else 0,
                "opcode": 2 if item.get("type") == "binary" else 1,
                "data": str(item.get("content") or ""),
            }
        )
    return messages


def to_har_entry(row: Mapping[str, Any], include_secrets: bool = False) -> dict[str, Any]:
    """One entry row (the dashboard's META_COLUMNS plus request_body and response_body, as bytes or as
    PostgREST's bytea text) as a HAR 1.2 entry, secrets redacted unless `include_secrets`.

    Times: wait = time to first byte, receive = the rest of the duration, time = their sum."""
    duration = max(0.0, number(row.get("duration_ms")) or 0.0)
    ttfb = number(row.get("ttfb_ms"))
    wait = min(duration, max(0.0, duration if ttfb is None else ttfb))
    receive = max(0.0, duration - wait)
    request_headers = _headers(row.get("request_headers"))
    response_headers = _headers(row.get("response_headers"))
    http_version = str(row.get("http_version") or "HTTP/1.1")
    query = _redacted_query(row.get("query"), include_secrets)
    request_body = body_bytes(row.get("request_body"))
    response_body = body_bytes(row.get("response_body"))
    request_body_size = row.get("request_body_size")
    request: dict[str, Any] = {
        "method": row["method"],
        "url": full_url(row, query),
        "httpVersion": http_version,
        "cookies": _request_cookies(request_headers, include_secrets),
        "headers": _pairs(request_headers, include_secrets),
        "queryString": _query_string(row.get("query"), include_secrets),
        "headersSize": -1,
        "bodySize": request_body_size if isinstance(request_body_size, int) else -1,
    }
    if request_body:
        body = _body_fields(request_body)
        request["postData"] = {
            "mimeType": row.get("request_content_type") or "",
            "params": [],
            "text": body["text"],
            **(
                {"comment": "text is base64 (binary body)", "encoding": "base64"}
                if "encoding" in body
                else {}
            ),
        }
    status = row.get("status")
    failed = not status
    scheme = row.get("scheme")
    messages = websocket_messages(response_body) if scheme in ("ws", "wss") and status == 101 else None
    response_body_size = row.get("response_body_size")
    content: dict[str, Any] = {
        "size": response_body_size if isinstance(response_body_size, int) else 0,
        "mimeType": row.get("response_content_type") or "",
        **({} if messages is not None else _body_fields(response_body)),
    }
    if row.get("response_body_truncated"):
        content["comment"] = (
            f"truncated: {len(response_body or b'')} of {row.get('response_body_size')} bytes stored"
        )
    response_size = row.get("response_size")
    response: dict[str, Any] = {
        "status": 0 if failed else status,
        "statusText": "",
        "httpVersion": http_version,
        "cookies": _response_cookies(response_headers, include_secrets),
        "headers": _pairs(response_headers, include_secrets),
        "content": content,
        "redirectURL": next((v for n, v in response_headers if n.lower() == "location"), ""),
        "headersSize": -1,
        "bodySize": -1
        if failed
        else (
            response_size
            if isinstance(response_size, int)
            else (response_body_size if isinstance(response_body_size, int) else -1)
        ),
    }
    if row.get("error"):
        response["_error"] = row["error"]
    entry: dict[str, Any] = {
        "startedDateTime": har_time(row["captured_at"]),
        "time": wait + receive,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "ssl": -1,
            "send": 0,
            "wait": wait,
            "receive": receive,
        },
        "_busymate": {
            "id": row.get("id"),
            "device_uuid": row.get("device_uuid"),
            "source": row.get("source"),
        },
    }
    for side in ("request", "response"):
        state = row.get(f"{side}_body_state")
        if state in KEPT_STATES:
            entry["_busymate"][f"{side}_body_state"] = state
    if messages is not None:
        entry["_resourceType"] = "websocket"
        entry["_webSocketMessages"] = messages
    if row.get("error"):
        entry["comment"] = f"error: {row['error']}"
    return entry
