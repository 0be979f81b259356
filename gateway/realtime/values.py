"""wal2json's values (Postgres's text output) as `to_jsonb(value)` would give them, which is how Supabase
Realtime types postgres_changes records: numbers, booleans, JSON, one-dimensional arrays, ISO timestamps.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime

import orjson

from busymate.gateway.realtime import filters as pgfilters

JSON_TYPES = {"json", "jsonb"}


def value(raw: object, typname: str) -> object:
    """A wal2json value as `to_jsonb(value)` would give it."""
    if raw is None or not isinstance(raw, str):
        return raw
    if typname in JSON_TYPES:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    if typname == "timestamptz":
        text = raw.replace(" ", "T", 1)
        return text + ":00" if re.search(r"[+-]\d\d$", text) else text
    if typname == "timestamp":
        return raw.replace(" ", "T", 1)
    if typname.startswith("_"):
        return _array(raw, typname[1:])
    return raw


def _array(text: str, element: str) -> object:
    """A one-dimensional array literal as a JSON list (anything fancier stays text)."""
    if not (text.startswith("{") and text.endswith("}")):
        return text
    body = text[1:-1]
    if not body:
        return []
    items: list[object] = []
    buf: list[str] = []
    quoted = False
    was_quoted = False
    i = 0
    while i < len(body):
        ch = body[i]
        if quoted:
            if ch == "\\" and i + 1 < len(body):
                buf.append(body[i + 1])
                i += 1
            elif ch == '"':
                quoted = False
            else:
                buf.append(ch)
        elif ch == '"':
            quoted = was_quoted = True
        elif ch == "{":
            return text
        elif ch == ",":
            items.append(_element("".join(buf), was_quoted, element))
            buf, was_quoted = [], False
        else:
            buf.append(ch)
        i += 1
    items.append(_element("".join(buf), was_quoted, element))
    return items


def _element(text: str, quoted: bool, element: str) -> object:
    if not quoted and text == "NULL":
        return None
    if element in pgfilters.NUMERIC:
        with contextlib.suppress(ValueError):
            return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    if element == "bool":
        return text == "t"
    if element in JSON_TYPES:
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(text)
    return value(text, element)


def commit_time(raw: object) -> str:
    """wal2json's commit timestamp as Realtime's `commit_timestamp` (UTC, milliseconds, `Z`)."""
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        moment = datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def key_text(value: object) -> str | None:
    """A key value as Postgres's text output would spell it (for matching the RLS check's answer)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
