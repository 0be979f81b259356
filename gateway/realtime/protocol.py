"""Phoenix frames as Supabase Realtime speaks them (https://supabase.com/docs/guides/realtime/protocol):
the 1.0.0 JSON objects, the 2.0.0 JSON arrays, the binary kind-3 broadcast push clients send and the kind-4
broadcast the server sends.

Decoding never raises on a client's bytes: a frame that does not parse is None and the socket ignores it, as
Phoenix does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

V1 = "1.0.0"
V2 = "2.0.0"
KIND_PUSH = 3
KIND_BROADCAST = 4
JSON_ENCODING = 1
BINARY_ENCODING = 0


@dataclass(slots=True)
class Frame:
    """One message: Phoenix's topic, event, payload, ref and join_ref."""

    topic: str
    event: str
    payload: Any
    ref: str | None = None
    join_ref: str | None = None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def decode(data: str | bytes, vsn: str) -> Frame | None:
    """A client's frame, or None when it is not one."""
    if isinstance(data, bytes):
        return _decode_push(data) if vsn == V2 else None
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if vsn == V2:
        if not isinstance(raw, list) or len(raw) != 5:
            return None
        join_ref, ref, topic, event, payload = raw
    else:
        if not isinstance(raw, dict):
            return None
        join_ref, ref, topic, event, payload = (
            raw.get("join_ref"),
            raw.get("ref"),
            raw.get("topic"),
            raw.get("event"),
            raw.get("payload"),
        )
    if not isinstance(topic, str) or not isinstance(event, str):
        return None
    return Frame(topic, event, payload if payload is not None else {}, _text(ref), _text(join_ref))


def _decode_push(data: bytes) -> Frame | None:
    """Kind 3: a broadcast push with its five short strings in front of the user payload."""
    if len(data) < 7 or data[0] != KIND_PUSH:
        return None
    lengths = data[1:6]
    encoding = data[6]
    offset = 7
    parts = []
    for size in lengths:
        parts.append(data[offset : offset + size].decode("utf-8", "replace"))
        offset += size
    if offset > len(data):
        return None
    join_ref, ref, topic, event, _metadata = parts
    body = data[offset:]
    payload: object
    if encoding == JSON_ENCODING:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    else:
        payload = bytes(body)
    return Frame(
        topic,
        "broadcast",
        {"type": "broadcast", "event": event, "payload": payload},
        ref or None,
        join_ref or None,
    )


def encode(frame: Frame, vsn: str) -> str:
    """A server frame as text: v1 objects always carry `ref` (never join_ref); v2 arrays."""
    if vsn == V2:
        return orjson.dumps([frame.join_ref, frame.ref, frame.topic, frame.event, frame.payload]).decode()
    return orjson.dumps(
        {"topic": frame.topic, "event": frame.event, "payload": frame.payload, "ref": frame.ref}
    ).decode()


def encode_raw_broadcast(
    topic: str, event: str, raw_payload: str, meta: Mapping[str, object], vsn: str
) -> str:
    """A broadcast whose user payload is already JSON text (from the database): spliced, not re-encoded."""
    head = orjson.dumps(topic).decode()
    inner = (
        '{"type":"broadcast","event":'
        + orjson.dumps(event).decode()
        + ',"payload":'
        + raw_payload
        + ',"meta":'
        + orjson.dumps(meta).decode()
        + "}"
    )
    if vsn == V2:
        return "[null,null," + head + ',"broadcast",' + inner + "]"
    return '{"topic":' + head + ',"event":"broadcast","payload":' + inner + ',"ref":null}'


def encode_binary_broadcast(
    topic: str, event: str, payload: bytes, meta: Mapping[str, object] | None
) -> bytes:
    """Kind 4: a broadcast whose payload is bytes, for 2.0.0 sockets."""
    t, e = topic.encode(), event.encode()
    m = orjson.dumps(meta) if meta else b""
    return bytes([KIND_BROADCAST, len(t), len(e), len(m), BINARY_ENCODING]) + t + e + m + payload


def truthy(value: object) -> bool:
    """A flag as clients spell it in a join's config or an HTTP message: true, or the string "true"."""
    return value is True or (isinstance(value, str) and value.lower() == "true")
