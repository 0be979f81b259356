"""POST /functions/v1/ingest {"batch": [entry, ...]}: a device's batch of captured flows (bmc, a HAR
import, any integrator), stored through `ingest_entries` under the caller's device token (docs/traffic.md).

The entries are exactly `rpc/ingest_entries`' (with `request_body_state` and `response_body_state`), and so
is the answer: `{"inserted", "duplicates", "rejected", "ids", "errors": [{"index", "error"}]}`, 200 even when
some rows were refused (each by its index), so a resent batch (client-chosen ids) is stored once. What this
adds is the HTTP edge a capture client wants: a gzip body (`Content-Encoding: gzip`, decompressed with a cap,
so a gzip bomb is refused after at most MAX_BYTES + 1 bytes of output), a size limit answered 413 and a batch
limit answered 400, both saying how to split; a user's token answered 403 saying a device token is needed; a
device token whose credential was revoked answered 401. Every refusal is `{"error": code, "message": ...}`
and stores nothing. The host checks the token's signature first (VERIFY_JWT), so its own 401s come as
`{"code", "message"}`.

When the body is exactly `{"batch": [...]}` its bytes go on to /rest/v1 as they came (decompressed): the
function parses them once to check the shape and never encodes them again.
"""

from __future__ import annotations

import base64
import zlib

import orjson

from busymate.api_core import ApiRefused, ApiUnreachable, decode
from busymate.functions_api import FunctionContext, FunctionRequest, FunctionResponse

MAX_BYTES = 32 * 1024 * 1024  # the body after decompression
MAX_ENTRIES = 1000  # ingest_entries' own limit
MIB = 1024 * 1024
SPLIT = "split the batch into several calls"
RPC = "/rest/v1/rpc/ingest_entries"


def _refuse(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> FunctionResponse:
    return FunctionResponse.json(status, {"error": error, "message": message}, headers)


def _too_large(size: str) -> FunctionResponse:
    return _refuse(
        413,
        "payload_too_large",
        f"the body is over {MAX_BYTES // MIB} MiB {size}: {SPLIT} (at most {MAX_ENTRIES} entries and "
        f"{MAX_BYTES // MIB} MiB each; a few MiB per call is best)",
    )


def _role(token: str | None) -> str | None:
    """The token's role claim, read without checking (the host checked the signature), or None."""
    if token is None or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    role = claims.get("role") if isinstance(claims, dict) else None
    return role if isinstance(role, str) else None


def gunzip(body: bytes, limit: int = MAX_BYTES) -> bytes | None:
    """The gzip body decompressed (every member), or None once it passes `limit` bytes; ValueError when it is
    not gzip. The output is capped as it is made, so a small bomb never grows past limit + 1 bytes."""
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while True:
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflate.decompress(data, limit + 1 - size)
            size += len(chunk)
            if size > limit:
                return None
            out.append(chunk)
            if not inflate.eof:
                raise ValueError("the gzip body ends early")
            data = inflate.unused_data
            if not data:
                return b"".join(out)
    except zlib.error as exc:
        raise ValueError(f"the body is not valid gzip: {exc}") from exc


async def handle(request: FunctionRequest, ctx: FunctionContext) -> FunctionResponse:
    """Check the caller and the batch, store it through ingest_entries, answer what it answers."""
    if request.method != "POST":
        return _refuse(405, "method_not_allowed", 'POST {"batch": [entry, ...]} (docs/traffic.md)')
    role = _role(request.bearer())
    if role == "authenticated" or role == "service_role":
        return _refuse(
            403,
            "device_token_required",
            "ingest takes a device token, not a user's or a key: pair a device (busymate devices add NAME) "
            "and send its token",
        )
    if role != "device":
        return _refuse(401, "device_token_required", "send a paired device's token as Authorization: Bearer")
    if len(request.body) > MAX_BYTES:
        return _too_large(f"({len(request.body)} bytes as sent)")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    raw = request.body
    if encoding == "gzip":
        try:
            unzipped = gunzip(raw)
        except ValueError as exc:
            return _refuse(400, "bad_gzip", str(exc))
        if unzipped is None:
            return _too_large("after decompression")
        raw = unzipped
    elif encoding not in ("identity", ""):
        return _refuse(415, "unsupported_encoding", f"Content-Encoding {encoding}: send gzip or no encoding")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _refuse(400, "bad_json", f"the body is not JSON: {exc}")
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, list):
        return _refuse(400, "validation_failed", 'send {"batch": [entry, ...]}: a JSON array of entries')
    if len(batch) > MAX_ENTRIES:
        return _refuse(
            400,
            "batch_too_large",
            f"a batch holds at most {MAX_ENTRIES} entries, this one {len(batch)}: {SPLIT}",
        )
    # The bytes as they came when they are exactly the call's arguments; otherwise only the batch.
    content = raw if len(body) == 1 else orjson.dumps({"batch": batch})
    try:
        sent = await ctx.api.send("POST", RPC, content=content, extra={"content-type": "application/json"})
        if sent.status_code == 200:  # ingest_entries' own answer, passed on as its bytes
            return FunctionResponse(200, {"content-type": "application/json"}, sent.content)
        answer = decode(f"POST {RPC}", sent)  # raises the refusal it stands for
    except ApiRefused as exc:
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        if exc.status == 401 or exc.code == "42501":  # expired, or a credential revoked by an unpair
            return _refuse(401, "invalid_device_token", message or "pair the device again")
        retry = {"retry-after": str(round(exc.retry_after))} if exc.retry_after is not None else None
        status = exc.status if exc.status < 500 or exc.status == 503 else 502
        return _refuse(status, exc.code or "api_refused", message, retry)
    except ApiUnreachable as exc:
        return _refuse(503, "unavailable", f"the API did not answer: {exc}; send the batch again later")
    return FunctionResponse.json(200, answer)
