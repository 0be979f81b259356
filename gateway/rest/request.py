"""A request as the handler gets it (`Call`), read the way PostgREST does: query keys, preferences, media
types, body
(https://docs.postgrest.org/en/v14/references/api/tables_views.html, https://docs.postgrest.org/en/v14/references/api/preferences.html)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import parse_qsl

import orjson

from busymate.gateway.rest.errors import ApiError, parse_error
from busymate.gateway.rest.filters import parse_filter, parse_logic, split_key
from busymate.gateway.rest.parse import (
    OPERATORS,
    Embed,
    Field,
    Filter,
    Logic,
    OrderTerm,
    parse_columns,
    parse_order,
    parse_select,
)

ANON_ROLE = "anon"
RESERVED = {"select", "columns", "on_conflict"}
BIGINT_MAX = 2**63 - 1
PREFER_KINDS = ("resolution", "missing", "return", "count", "tx", "handling", "timezone", "max-affected")
PREFER_VALUES = {
    "return": {"minimal", "representation", "headers-only"},
    "count": {"exact", "planned", "estimated"},
    "resolution": {"merge-duplicates", "ignore-duplicates"},
    "missing": {"default", "null"},
    "handling": {"strict", "lenient"},
    "tx": {"commit", "rollback"},
}
JSON = "application/json"
OBJECT = "application/vnd.pgrst.object+json"
ARRAY = "application/vnd.pgrst.array+json"
CSV = "text/csv"
OPENAPI = "application/openapi+json"


@dataclass
class Call:
    """One request as the handler sees it, after the gateway verified the token."""

    method: str
    path: str  # after /rest/v1, e.g. /todos or /rpc/fn
    query: str
    headers: dict[str, str]  # lower-cased names; repeated ones joined with ", "
    prefer: list[str]
    body: bytes
    claims: dict[str, object]
    role: str

    @cached_property
    def preferences(self) -> Prefer:
        """The Prefer headers, parsed once per request."""
        return parse_prefer(self.prefer)


@dataclass
class Query:
    """The query string, sorted into PostgREST's parts."""

    select: list[Field | Embed] = field(default_factory=lambda: [Field("*")])
    columns: list[str] | None = None
    on_conflict: list[str] | None = None
    filters: list[Filter | Logic] = field(default_factory=list)
    order: dict[tuple[str, ...], list[OrderTerm]] = field(default_factory=dict)
    limits: dict[tuple[str, ...], int] = field(default_factory=dict)
    offsets: dict[tuple[str, ...], int] = field(default_factory=dict)
    rpc_args: list[tuple[str, str]] = field(default_factory=list)


def parse_query(raw: str, *, rpc_get: bool) -> Query:
    """Form-decode and classify every key (the reserved keys; on GET RPC a non-filter key is an argument)."""
    q = Query()
    seen: set[str] = set()
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key == "apikey":
            continue
        if key in RESERVED:
            if key in seen:
                continue
            seen.add(key)
            if key == "select":
                q.select = parse_select(value)
            elif key == "columns":
                q.columns = parse_columns(value)
            else:
                q.on_conflict = parse_columns(value)
            continue
        head = key.split("->", 1)[0]
        segments = head.split(".")
        last = segments[-1]
        negate = False
        if last in ("or", "and") and len(segments) >= 2 and segments[-2] == "not":
            negate = True
            path = tuple(segments[:-2])
        else:
            path = tuple(segments[:-1])
        if last in ("or", "and") and "->" not in key:
            q.filters.append(parse_logic(path, last, negate, value))
        elif last == "order" and "->" not in key:
            q.order[path] = parse_order(path, value)
        elif last in ("limit", "offset") and "->" not in key:
            number = _integer(key, value)
            (q.limits if last == "limit" else q.offsets)[path] = number
        elif rpc_get and not _looks_like_filter(value):
            q.rpc_args.append((key, value))
        else:
            epath, column, json_path = split_key(key)
            q.filters.append(parse_filter(epath, column, json_path, value))
    return q


def _looks_like_filter(value: str) -> bool:
    """On GET /rpc, `?id=eq.1` filters the result and `?id=1` is an argument."""
    match = re.match(r"^(?:not\.)?([a-z]+)(?:\([^)]*\))?\.", value)
    return match is not None and match.group(1) in OPERATORS


def _integer(key: str, value: str) -> int:
    if re.fullmatch(r"-\d+", value) and key.endswith("limit"):
        raise ApiError(
            416,
            "PGRST103",
            "Requested range not satisfiable",
            details="Limit should be greater than or equal to zero.",
        )
    if not re.fullmatch(r"\d+", value):
        raise parse_error(key.rsplit(".", 1)[-1], value, 0, "unexpected input expecting a whole number")
    return range_bound(value, key.rsplit(".", 1)[-1].capitalize())


def range_bound(digits: str, what: str) -> int:
    """A limit, an offset or a Range boundary, which Postgres takes as a bigint; 416 PGRST103 beyond."""
    if len(digits.lstrip("0")) > len(str(BIGINT_MAX)) or int(digits) > BIGINT_MAX:
        raise ApiError(
            416,
            "PGRST103",
            "Requested range not satisfiable",
            details=f"{what} should be at most {BIGINT_MAX}.",
        )
    return int(digits)


@dataclass(frozen=True)
class Prefer:
    """The honoured preferences, first occurrence of each kind."""

    values: dict[str, str]
    invalid: list[str]

    def get(self, kind: str) -> str | None:
        """The value given for `kind`, if any."""
        return self.values.get(kind)

    def applied(self, honoured: list[str]) -> str | None:
        """The Preference-Applied header for the kinds in `honoured`, in PostgREST's order."""
        parts = [f"{k}={self.values[k]}" for k in PREFER_KINDS if k in honoured and k in self.values]
        return ", ".join(parts) or None


def check_strict(prefer: Prefer) -> None:
    """handling=strict refuses a request that carries a preference it does not know (PGRST122)."""
    if prefer.get("handling") == "strict" and prefer.invalid:
        raise ApiError(
            400,
            "PGRST122",
            "Invalid preferences given with handling=strict",
            details="Invalid preferences: " + ", ".join(prefer.invalid),
        )


def parse_prefer(headers: list[str]) -> Prefer:
    """All Prefer headers, split on commas; unknown values are noted for handling=strict."""
    values: dict[str, str] = {}
    invalid: list[str] = []
    for header in headers:
        for part in header.split(","):
            part = part.strip()
            if not part:
                continue
            kind, _, value = part.partition("=")
            kind, value = kind.strip(), value.strip()
            if kind in values:
                continue
            if (
                (kind in PREFER_VALUES and value in PREFER_VALUES[kind])
                or (kind == "max-affected" and value.isdigit())
                or (kind == "timezone" and value)
            ):
                values[kind] = value
            else:
                invalid.append(part)
    return Prefer(values, invalid)


def pick_media(accept: str | None, allowed: tuple[str, ...]) -> str:
    """The first type in the client's Accept that we can produce, or 406 PGRST107."""
    if not accept:
        return allowed[0]
    wanted = [part.strip() for part in accept.split(",") if part.strip()]
    for item in wanted:
        media = item.split(";")[0].strip().lower()
        params = item[len(media) :].lower()
        if media in ("*/*", "application/*"):
            return allowed[0]
        if media == JSON and JSON in allowed:
            return JSON
        if media in (OBJECT, ARRAY) and "nulls=stripped" in params.replace(" ", "") and media in allowed:
            return media + ";nulls=stripped"
        if media in allowed:
            return media
    raise ApiError(406, "PGRST107", f"None of these media types are available: {', '.join(wanted)}")


def parse_body(content_type: str | None, body: bytes) -> object:
    """The request body as Python values: JSON, CSV or a form."""
    media = (content_type or JSON).split(";")[0].strip().lower()
    if media in (JSON, "application/vnd.pgrst.object+json", "application/vnd.pgrst.object"):
        if not body.strip():
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "PGRST102", "Empty or invalid json", details=str(exc)) from exc
    if media == CSV:
        try:
            rows = list(csv.reader(io.StringIO(body.decode())))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ApiError(400, "PGRST102", "Invalid CSV body") from exc
        if not rows:
            return []
        header = rows[0]
        return [
            {k: (None if v == "NULL" else v) for k, v in zip(header, row, strict=False)} for row in rows[1:]
        ]
    if media == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
    raise ApiError(400, "PGRST102", f"Content-Type not acceptable: {content_type}")
