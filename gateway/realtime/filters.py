"""postgres_changes filters (https://supabase.com/docs/guides/realtime/postgres-changes):
`column=[not.]op.value`, several joined by commas (AND), evaluated against a change's typed values the way
Realtime's `check_equality_op` does: the filter value is read as the column's type, NULL fails everything but
`is`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

OPS = ("eq", "neq", "lt", "lte", "gt", "gte", "in", "like", "ilike", "is", "match", "imatch", "isdistinct")
NUMERIC = {"int2", "int4", "int8", "float4", "float8", "numeric", "oid", "money"}
MAX_IN = 100


class FilterError(ValueError):
    """A filter string that does not parse; the message is what the client sees."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition."""

    column: str
    op: str
    value: str | tuple[str, ...]
    negate: bool = False


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and double quotes."""
    parts, depth, quoted, buf = [], 0, False, []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quoted and i + 1 < len(text):
            buf.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse(text: str | None) -> list[Filter]:
    """The filters of a binding's `filter` string; else FilterError, in Realtime's words."""
    if text is None or not text.strip():
        return []
    filters = []
    for part in _split(text, ","):
        column, eq, rest = part.partition("=")
        column = column.strip()
        if not eq or not column:
            raise FilterError(f"Error parsing `filter` params: {part!r} is not column=op.value")
        negate = rest.startswith("not.")
        if negate:
            rest = rest[4:]
        op, dot, value = rest.partition(".")
        if not dot or op not in OPS:
            raise FilterError(f"Error parsing `filter` params: [{part!r}] (unsupported operator {op!r})")
        if op == "in":
            if not (value.startswith("(") and value.endswith(")")):
                raise FilterError(
                    f"Error parsing `filter` params: [{part!r}] (in takes a list in parentheses)"
                )
            items = tuple(_unquote(v.strip()) for v in _split(value[1:-1], ",") if v.strip())
            if len(items) > MAX_IN:
                raise FilterError(f"Error parsing `filter` params: [{part!r}] (more than {MAX_IN} values)")
            filters.append(Filter(column, op, items, negate))
            continue
        value = _unquote(value)
        if op == "is" and value.lower() not in ("null", "true", "false", "unknown"):
            raise FilterError(f"Error parsing `filter` params: [{part!r}] (is takes null, true, false)")
        if op in ("match", "imatch"):
            try:
                re.compile(value)
            except re.error as exc:
                raise FilterError(f"Error parsing `filter` params: [{part!r}] ({exc})") from exc
        filters.append(Filter(column, op, value, negate))
    return filters


def _typed(raw: object, type_name: str) -> object:
    """A value (from the change or the filter) as something comparable for its column type."""
    if raw is None:
        return None
    if type_name in NUMERIC:
        try:
            return Decimal(str(raw))
        except InvalidOperation:
            return str(raw)
    if type_name == "bool":
        if isinstance(raw, bool):
            return raw
        return str(raw).lower() in ("t", "true", "1", "yes", "on")
    if type_name in ("timestamptz", "timestamp"):
        try:
            return datetime.fromisoformat(str(raw).replace(" ", "T").replace("Z", "+00:00"))
        except ValueError:
            return str(raw)
    if type_name == "date":
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            return str(raw)
    if type_name == "uuid":
        return str(raw).lower()
    if isinstance(raw, dict | list):
        return raw
    return str(raw)


def _like(pattern: str, flags: int) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), flags | re.DOTALL)


def _holds(f: Filter, raw: object, type_name: str) -> bool:
    if f.op == "is":
        word = str(f.value).lower()
        if word in ("null", "unknown"):
            return raw is None
        return raw is not None and _typed(raw, "bool") == (word == "true")
    if f.op == "isdistinct":
        return _typed(raw, type_name) != _typed(f.value, type_name)
    if raw is None:
        return False
    value = _typed(raw, type_name)
    if f.op == "in":
        return any(value == _typed(v, type_name) for v in f.value)
    text = str(f.value)
    if f.op in ("like", "ilike"):
        return _like(text, re.IGNORECASE if f.op == "ilike" else 0).fullmatch(str(raw)) is not None
    if f.op in ("match", "imatch"):
        return re.search(text, str(raw), re.IGNORECASE if f.op == "imatch" else 0) is not None
    other = _typed(text, type_name)
    try:
        if f.op == "eq":
            return value == other
        if f.op == "neq":
            return value != other
        if f.op == "lt":
            return bool(value < other)  # type: ignore[operator]
        if f.op == "lte":
            return bool(value <= other)  # type: ignore[operator]
        if f.op == "gt":
            return bool(value > other)  # type: ignore[operator]
        if f.op == "gte":
            return bool(value >= other)  # type: ignore[operator]
    except TypeError:
        return False
    return False


def matches(filters: list[Filter], row: dict[str, object], types: dict[str, str]) -> bool:
    """Whether a row passes every filter; a filter on a column the row lacks fails."""
    for f in filters:
        if f.column not in row:
            return False
        if _holds(f, row[f.column], types.get(f.column, "text")) == f.negate:
            return False
    return True
