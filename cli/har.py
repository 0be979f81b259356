"""HAR 1.2 in and out: `busymate export --har FILE` and `busymate import FILE.har --device NAME`.

`export_har` reads entries through /rest/v1 under the caller's user token (row-level security decides what is
seen), a page of metadata at a time (keyset on captured_at, id), keeps what `busymate tail`'s filters let
through, reads those entries' bodies, and writes HAR 1.2 as it goes (a big export is never held in memory).
The entries look like the dashboard's (dashboard/src/detail/har.tsx): the same fields, the same redaction,
`_busymate: {id, device_uuid, source}`; WebSocket transcripts become Chrome's `_webSocketMessages`. One entry
row as a HAR entry is busymate/har.py's (`to_har_entry`), shared with the MCP server's `export_har`.

`import_har` posts a HAR's entries to `/functions/v1/ingest` under a device token, in batches, with stable ids
(importing the same file twice stores it once), and reports per entry index what was refused. It needs only a
URL, an anon key and a device token, so `bmc import` calls it with its own credential.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from busymate import __version__
from busymate.api_core import ApiRefused, TooLarge
from busymate.cli.common import err, explain, out
from busymate.cli.tail_filters import Filters
from busymate.cli.tail_render import parse_time
from busymate.client import Api
from busymate.errors import BusymateError
from busymate.har import KEPT_STATES as KEPT_STATES
from busymate.har import META_COLUMNS as META_COLUMNS
from busymate.har import REDACTED as REDACTED
from busymate.har import STATE_COLUMNS as STATE_COLUMNS
from busymate.har import body_bytes as body_bytes
from busymate.har import bytes_to_text as bytes_to_text
from busymate.har import full_url as full_url
from busymate.har import har_time as har_time
from busymate.har import is_secret_header as is_secret_header
from busymate.har import is_secret_param as is_secret_param
from busymate.har import number
from busymate.har import to_har_entry as to_har_entry
from busymate.har import websocket_messages as websocket_messages

PAGE = 500  # metadata rows per read
BODY_CHUNK = 25  # entries per body read, as the dashboard reads them (bodies come as hex)
BATCH = 500  # entries per ingest call (the function takes at most 1000)
BATCH_BYTES = 8 * 1024 * 1024  # and about this much JSON
INGEST_FUNCTION = "/functions/v1/ingest"
CREATOR = "Busymate CLI"  # log.creator.name of our exports
ID_NAMESPACE = uuid.UUID("6f1d3c2e-8a4b-5c1e-9b7a-2d4e6f8a0b1c")  # uuid5 namespace of imported entries' ids
METHOD_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}")  # an HTTP token, within entries.method's 32
SCHEMES = ("http", "https", "ws", "wss")


class HarError(BusymateError):
    """A file or an entry that is not HAR we can use; the message says what is wrong."""

    exit_code = 2


# -- export: the file --


def parse_when(value: str, now: datetime | None = None) -> datetime:
    """`--since`/`--until`: an ISO time (zone-less is UTC) or an age like 30s, 15m, 2h, 7d."""
    text = value.strip()
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text.lower()):
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m[2]]
        return (now or datetime.now(UTC)) - timedelta(**{unit: float(m[1])})
    parsed = parse_time(text)
    if parsed is None:
        raise ValueError(
            f"{value!r} is not a time: use an ISO time (2026-12-01T10:00:00Z) or an age (30m, 2h, 7d)"
        )
    return parsed


@dataclass
class ExportScope:
    """What to export: the tail filters plus a time window and, optionally, one workspace."""

    filters: Filters = field(default_factory=Filters)
    since: datetime | None = None
    until: datetime | None = None
    workspace_id: str | None = None


def _device_uuids(api: Api, refs: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Names by uuid of the devices the caller sees, and the uuids `refs` (names or uuids) name."""
    rows = api.select("devices", {"select": "uuid,name"})
    names = {str(r["uuid"]): str(r["name"]) for r in rows}
    chosen: list[str] = []
    for ref in refs:
        hits = [u for u, n in names.items() if u == ref.lower() or n.casefold() == ref.casefold()]
        if not hits and re.fullmatch(r"[0-9a-fA-F-]{36}", ref):
            hits = [ref.lower()]  # a deleted device's traffic is still there
        if not hits:
            raise BusymateError(f"no device {ref!r} is visible to you: see `busymate devices list`")
        chosen.extend(hits)
    return names, chosen


def _pages(api: Api, scope: ExportScope, device_uuids: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
    """Metadata rows oldest first, a page at a time, keyset on (captured_at, id)."""
    after: tuple[str, str] | None = None
    while True:
        params: dict[str, str] = {
            "select": META_COLUMNS,
            "order": "captured_at.asc,id.asc",
            "limit": str(PAGE),
        }
        window = []
        if scope.since is not None:
            window.append(f"captured_at.gte.{scope.since.isoformat()}")
        if scope.until is not None:
            window.append(f"captured_at.lt.{scope.until.isoformat()}")
        if after is not None:
            at, last = after
            window.append(f'or(captured_at.gt."{at}",and(captured_at.eq."{at}",id.gt.{last}))')
        if window:
            params["and"] = f"({','.join(window)})"
        if scope.workspace_id:
            params["workspace_id"] = f"eq.{scope.workspace_id}"
        if device_uuids:
            params["device_uuid"] = f"in.({','.join(device_uuids)})"
        rows = api.select("entries", params)
        if rows:
            yield rows
        if len(rows) < PAGE:
            return
        after = (str(rows[-1]["captured_at"]), str(rows[-1]["id"]))


def _with_bodies(api: Api, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their request and response bodies, read `BODY_CHUNK` entries at a time."""
    bodies: dict[str, dict[str, Any]] = {}
    for i in range(0, len(rows), BODY_CHUNK):
        chunk = rows[i : i + BODY_CHUNK]
        ids = ",".join(str(r["id"]) for r in chunk)
        times = [str(r["captured_at"]) for r in chunk]
        found = api.select(
            "entries",
            {
                "select": "id,captured_at,request_body,response_body",
                "id": f"in.({ids})",
                "and": f'(captured_at.gte."{min(times)}",captured_at.lte."{max(times)}")',
            },
        )
        for b in found:
            bodies[f"{b['id']}/{parse_time(b['captured_at'])}"] = b
    out = []
    for row in rows:
        body = bodies.get(f"{row['id']}/{parse_time(row['captured_at'])}", {})
        out.append(
            {**row, "request_body": body.get("request_body"), "response_body": body.get("response_body")}
        )
    return out


def export_har(
    api: Api,
    out: IO[str],
    scope: ExportScope | None = None,
    *,
    include_secrets: bool = False,
    progress: Callable[[int, int], None] | None = None,
    creator: str = CREATOR,
) -> int:
    """Write the entries `scope` selects, oldest first, to `out` as HAR 1.2; how many were written.

    `api` carries the caller's user token; `progress(written, scanned)` is called after each page."""
    scope = scope or ExportScope()
    names, device_uuids = _device_uuids(api, scope.filters.devices)
    head = {
        "version": "1.2",
        "creator": {"name": creator, "version": __version__},
        "pages": [],
        "comment": "secrets included"
        if include_secrets
        else f"secret headers and cookies replaced by {REDACTED}",
    }
    out.write('{"log": ' + json.dumps(head, ensure_ascii=False)[:-1] + ', "entries": [')
    written = scanned = 0
    for page in _pages(api, scope, device_uuids):
        scanned += len(page)
        kept = [r for r in page if scope.filters.match(r, names.get(str(r.get("device_uuid"))))]
        for row in _with_bodies(api, kept) if kept else []:
            out.write(
                ("\n" if written == 0 else ",\n")
                + json.dumps(to_har_entry(row, include_secrets), ensure_ascii=False)
            )
            written += 1
        if progress is not None:
            progress(written, scanned)
    out.write("\n]}}\n")
    return written


# -- import: one entry --


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HarError(f"{what} is missing or not an object")
    return value


def _har_headers(value: object, what: str) -> list[list[str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise HarError(f"{what} is not a list")
    pairs = []
    for h in value:
        if not isinstance(h, dict) or not isinstance(h.get("name"), str):
            raise HarError(f"{what} holds something that is not a {{name, value}} header")
        pairs.append([h["name"], str(h.get("value") if h.get("value") is not None else "")])
    return pairs


def _header(pairs: Sequence[Sequence[str]], name: str) -> str | None:
    return next((v for n, v in pairs if n.lower() == name), None)


def _har_body(holder: Mapping[str, Any]) -> bytes | None:
    """HAR text (or base64 text with `encoding: base64`) as bytes; None when there is none."""
    text = holder.get("text")
    if not isinstance(text, str) or text == "":
        return None
    if holder.get("encoding") == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HarError("a body says base64 but is not valid base64") from exc
    return text.encode("utf-8")


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data else None


def _transcript(messages: object) -> bytes:
    """Chrome's `_webSocketMessages` as the proxy's transcript (docs/proxy.md)."""
    if not isinstance(messages, list):
        raise HarError("_webSocketMessages is not a list")
    items = []
    for m in messages:
        if not isinstance(m, dict) or m.get("type") not in ("send", "receive"):
            raise HarError("a WebSocket message is not {type: send|receive, time, opcode, data}")
        at = number(m.get("time"))
        items.append(
            {
                "from": "client" if m["type"] == "send" else "server",
                "type": "binary" if m.get("opcode") == 2 else "text",
                "at": datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds") if at else None,
                "content": str(m.get("data") or ""),
            }
        )
    return json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def from_har_entry(entry: object) -> dict[str, Any]:
    """A HAR entry as an entry of the ingest batch format (docs/traffic.md), without an id; HarError (with the
    reason in words) when it cannot be one."""
    har = _dict(entry, "the entry")
    request = _dict(har.get("request"), "request")
    response: dict[str, Any] = har["response"] if isinstance(har.get("response"), dict) else {}
    method = request.get("method")
    if not isinstance(method, str) or not METHOD_RE.fullmatch(method):
        raise HarError(f"request.method {method!r} is not an HTTP method (a token of 1 to 32 letters)")
    url = request.get("url")
    if not isinstance(url, str):
        raise HarError("request.url is missing")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HarError(f"request.url {url!r} is not a URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname:
        raise HarError(f"request.url {url[:100]!r} is not an http(s) or ws(s) URL with a host")
    started = parse_time(har.get("startedDateTime"))
    if started is None:
        raise HarError(f"startedDateTime {har.get('startedDateTime')!r} is not an ISO 8601 time")
    request_headers = _har_headers(request.get("headers"), "request.headers")
    response_headers = _har_headers(response.get("headers"), "response.headers")
    post: dict[str, Any] = request["postData"] if isinstance(request.get("postData"), dict) else {}
    content: dict[str, Any] = response["content"] if isinstance(response.get("content"), dict) else {}
    request_body = _har_body(post)
    is_ws = "_webSocketMessages" in har
    response_body = _transcript(har["_webSocketMessages"]) if is_ws else _har_body(content)
    status = response.get("status")
    if isinstance(status, float) and status.is_integer():
        status = int(status)
    if status is not None and (not isinstance(status, int) or isinstance(status, bool) or status > 999):
        raise HarError(f"response.status {status!r} is not an HTTP status")
    timings: dict[str, Any] = har["timings"] if isinstance(har.get("timings"), dict) else {}
    total = number(har.get("time"))
    receive = number(timings.get("receive"))
    duration = total if total is not None and total >= 0 else None
    ttfb = None
    if duration is not None:  # everything before the first byte: the total less the receive phase
        ttfb = max(0.0, duration - (receive if receive is not None and receive > 0 else 0.0))
    error = response.get("_error") or har.get("_error")
    if is_ws and scheme in ("http", "https"):
        scheme = "wss" if scheme == "https" else "ws"
    response_body_size = _int(content.get("size"))
    comment = content.get("comment")
    ours: dict[str, Any] = har["_busymate"] if isinstance(har.get("_busymate"), dict) else {}
    row: dict[str, Any] = {
        "captured_at": started.isoformat(),
        "method": method.upper(),
        "scheme": scheme,
        "host": parts.hostname,
        "port": port or (443 if scheme in ("https", "wss") else 80),
        "path": parts.path or "/",
        "query": parts.query or None,
        "http_version": request.get("httpVersion") or response.get("httpVersion") or None,
        "status": status if isinstance(status, int) and status > 0 else None,
        "request_content_type": _header(request_headers, "content-type") or post.get("mimeType") or None,
        "response_content_type": _header(response_headers, "content-type") or content.get("mimeType") or None,
        "request_headers": request_headers,
        "response_headers": response_headers,
        "request_body_b64": _b64(request_body),
        "response_body_b64": _b64(response_body),
        "request_body_size": max(_int(request.get("bodySize")) or 0, len(request_body or b"")),
        "response_body_size": len(response_body or b"")
        if is_ws
        else max(response_body_size or 0, len(response_body or b"")),
        "response_body_truncated": isinstance(comment, str) and comment.startswith("truncated:"),
        "request_size": _int(request.get("bodySize")),
        "response_size": _int(response.get("bodySize")),
        "duration_ms": duration,
        "ttfb_ms": ttfb,
        "error": str(error) if error else None,
    }
    for side in ("request", "response"):
        if ours.get(f"{side}_body_state") in KEPT_STATES:
            row[f"{side}_body_state"] = ours[f"{side}_body_state"]
    return row


# -- import: the file --


@dataclass
class ImportResult:
    """What an import did: counts, the stored ids, and the reason for each refused entry (by HAR index)."""

    total: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    ids: list[str | None] = field(default_factory=list)


@dataclass
class HarFile:
    """A HAR file as read: its entries, its SHA-256 and the name of the tool that wrote it."""

    entries: list[Any]
    sha256: str
    creator: str


def read_har(path: Path) -> HarFile:
    """A HAR file's entries, hash and creator; HarError saying what is wrong when it is not HAR."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HarError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise HarError(f"{path} is not a HAR file: it is not JSON ({exc})") from exc
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(log, dict) or not isinstance(entries, list):
        raise HarError(
            f'{path} is not a HAR file: it has no log.entries list (HAR 1.2 is {{"log": {{...}}}})'
        )
    creator = log.get("creator")
    name = creator.get("name") if isinstance(creator, dict) else None
    return HarFile(entries, hashlib.sha256(raw).hexdigest(), str(name or ""))


def token_subject(token: str) -> str | None:
    """The `sub` of a JWT, unverified (a device token's is its device's uuid)."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return str(sub) if sub else None


def entry_id(entry: object, index: int, har: HarFile, device_uuid: str) -> str:
    """A stable id, so importing the same file twice stores it once.

    An entry of our own CLI's export (`_busymate.id`, times exact to the microsecond) going back to the device
    it came from keeps its id, so it is recognised as already there (the key is id and captured_at). Any
    other entry with a `_busymate.id` (another device, or the dashboard's export, whose times are cut to
    milliseconds and would store the same id twice) gets uuid5 of the device and that id; the rest uuid5 of
    the device, the file's SHA-256 and the index."""
    ours = entry.get("_busymate") if isinstance(entry, dict) else None
    if isinstance(ours, dict) and isinstance(ours.get("id"), str):
        try:
            original = str(uuid.UUID(ours["id"]))
        except ValueError:
            original = None
        if original is not None:
            same_device = str(ours.get("device_uuid") or "").lower() == device_uuid.lower()
            if same_device and har.creator == CREATOR:
                return original
            return str(uuid.uuid5(ID_NAMESPACE, f"{device_uuid}/{original}"))
    return str(uuid.uuid5(ID_NAMESPACE, f"{device_uuid}/{har.sha256}/{index}"))


def _batches(rows: Sequence[tuple[int, dict[str, Any]]]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    batch: list[tuple[int, dict[str, Any]]] = []
    size = 0
    for item in rows:
        weight = (
            len(item[1].get("request_body_b64") or "") + len(item[1].get("response_body_b64") or "") + 1024
        )
        if batch and (len(batch) >= BATCH or size + weight > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += weight
    if batch:
        yield batch


def _post(api: Api, rows: list[dict[str, Any]]) -> dict[str, Any]:
    answer = api.request("POST", INGEST_FUNCTION, json={"batch": rows})
    if not isinstance(answer, dict):
        raise BusymateError(f"the ingest function answered {str(answer)[:200]!r}, not a summary")
    return answer


def _send(api: Api, batch: list[tuple[int, dict[str, Any]]], result: ImportResult) -> None:
    """One batch; a batch the server finds too large is sent again in halves."""
    try:
        answer = _post(api, [row for _, row in batch])
    except TooLarge:
        if len(batch) == 1:
            result.rejected[batch[0][0]] = "too large for the server, even on its own"
            return
        half = len(batch) // 2
        _send(api, batch[:half], result)
        _send(api, batch[half:], result)
        return
    result.imported += int(answer.get("inserted") or 0)
    result.duplicates += int(answer.get("duplicates") or 0)
    ids: list[Any] = answer["ids"] if isinstance(answer.get("ids"), list) else []
    for at, (index, _) in enumerate(batch):
        if at < len(ids):
            result.ids[index] = ids[at]
    for problem in answer.get("errors") or []:
        if (
            isinstance(problem, dict)
            and isinstance(problem.get("index"), int)
            and problem["index"] < len(batch)
        ):
            result.rejected[batch[problem["index"]][0]] = str(problem.get("error") or "refused")


def import_har(
    path: Path,
    *,
    url: str,
    anon_key: str,
    device_token: str,
    device_uuid: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Post the entries of the HAR file at `path` to /functions/v1/ingest under `device_token`, in batches.

    Entries that are not usable are refused here, before anything is sent, with the reason; the server's
    refusals come back by index. Raises HarError when the file is not HAR, and the API's errors (with how far
    it got: importing again is safe, stored entries come back as duplicates) when a call fails.
    `progress(sent, total)` is called after each batch."""
    har = read_har(path)
    entries = har.entries
    device = device_uuid or token_subject(device_token) or ""
    result = ImportResult(total=len(entries), ids=[None] * len(entries))
    rows: list[tuple[int, dict[str, Any]]] = []
    for index, entry in enumerate(entries):
        try:
            row = from_har_entry(entry)
        except HarError as exc:
            result.rejected[index] = str(exc)
            continue
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a shape no rule above names
            result.rejected[index] = f"not a HAR entry this import can read ({type(exc).__name__}: {exc})"
            continue
        row["id"] = entry_id(entry, index, har, device)
        rows.append((index, row))
    sent = 0
    with Api(url, anon_key, device_token, timeout=120.0) as api:
        for batch in _batches(rows):
            try:
                _send(api, batch, result)
            except BusymateError as exc:
                said = explain(exc) if isinstance(exc, ApiRefused) else str(exc)
                failed = BusymateError(
                    f"{said}. Stopped after {sent} of {len(rows)} entries were sent ({result.imported} "
                    f"imported, {result.duplicates} already there); run the import again: what is stored is "
                    "recognised"
                )
                failed.exit_code = exc.exit_code
                raise failed from exc
            sent += len(batch)
            if progress is not None:
                progress(sent, len(rows))
    return result


def report_import(
    result: ImportResult, path: Path, *, device_name: str, device_uuid: str, as_json: bool = False
) -> bool:
    """Print an import's summary (`busymate import`, `bmc import`): JSON on stdout, or a line and one line per
    refused entry on stderr. Whether any entry was refused (the command then exits 1)."""
    rejected = dict(sorted(result.rejected.items()))
    if as_json:
        summary = {
            "entries": result.total,
            "imported": result.imported,
            "duplicates": result.duplicates,
            "rejected": len(rejected),
            "errors": [{"index": i, "error": why} for i, why in rejected.items()],
            "device": device_uuid,
        }
        out.print_json(json.dumps(summary))
    else:
        err.print(
            f"{path}: {result.total} entries; imported {result.imported}, {result.duplicates} already there, "
            f"{len(rejected)} refused (device {device_name})",
            soft_wrap=True,
            markup=False,
        )
        for index, why in rejected.items():
            err.print(f"  entry {index}: {why}", soft_wrap=True, markup=False)
    return bool(rejected)
