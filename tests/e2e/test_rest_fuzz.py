"""Property-based fuzz of /rest/v1 on the running server: whatever a client sends, the answer is never a 5xx,
errors keep PostgREST's shape and never quote the SQL we generate, and no row that RLS hides ever comes back.

Query strings are built from the grammar's real pieces (select lists with renames, JSON paths, casts and
embeds; filters with every operator, `not.`, quantifiers and FTS languages; or=/and= trees; order=;
limit/offset) mixed with junk: quotes, parentheses, SQL fragments, unicode, NUL, odd or double
percent-encoding. Bodies are random JSON, plus some that are not JSON at all.

Each property runs Hypothesis inside the test, over fixtures resolved once, so it can also assert afterwards
that the fuzz was not vacuous (some requests got through with rows). Server bugs the fuzz found are tolerated
by `check` through KNOWN_BUGS and pinned by strict xfail tests at the end of the file: fixing one turns its
test into an XPASS failure, the cue to delete both.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_plus

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from busymate.settings import Settings
from tests.world import World

# BUSYMATE_FUZZ_EXAMPLES=2000 digs deeper; the default keeps the file near half a minute on two cores.
EXAMPLES = int(os.environ.get("BUSYMATE_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# -- the grammar's pieces ------------------------------------------------------------------------------------

COLUMNS = {
    "devices": ["uuid", "workspace_id", "owner_user_id", "name", "model", "os", "source", "connection_type",
                "app_build", "country", "proxy_port", "allowed_sources", "paired", "last_seen_at",
                "created_at"],
    "entries": ["id", "workspace_id", "device_uuid", "source", "captured_at", "method", "scheme", "host",
                "port", "path", "query", "status", "duration_ms", "request_headers", "response_headers",
                "request_body", "response_body", "request_body_size", "response_body_truncated", "error"],
    "workspaces": ["id", "slug", "name", "retention_days", "created_at"],
    "recent_entries": ["id", "captured_at", "workspace_id", "device_uuid", "source", "method", "host",
                       "status", "duration_ms", "error"],
    "fuzz_scratch": ["id", "workspace_id", "label", "n", "amount", "flag", "tags", "doc", "at", "ref",
                     "span"],
    "profiles": ["id", "email", "display_name", "role", "busybro_prefs", "created_at"],
    "device_status": ["device_uuid", "online", "vpn_state", "heartbeat_at", "ip", "ip_country"],
    "workspace_members": ["workspace_id", "user_id", "created_at"],
    "workspace_tabs": ["id", "workspace_id", "user_id", "name", "filter", "position"],
}  # fmt: skip
# Embeds that exist, as a select names them, with the table whose columns they hold.
EMBEDS = {
    "devices": {"workspaces": "workspaces", "workspaces!inner": "workspaces", "workspace_id": "workspaces",
                "profiles!devices_owner_user_id_fkey": "profiles", "owner_user_id": "profiles",
                "device_status": "device_status", "device_status!inner": "device_status"},
    "workspaces": {"devices": "devices", "devices!inner": "devices", "workspace_members": "workspace_members",
                   "workspace_tabs": "workspace_tabs", "workspace_tabs!left": "workspace_tabs"},
    "profiles": {}, "device_status": {"devices": "devices"},
    "workspace_members": {"workspaces": "workspaces"}, "workspace_tabs": {"workspaces": "workspaces"},
    "entries": {}, "recent_entries": {}, "fuzz_scratch": {},
}  # fmt: skip
# Embeds that are wrong one way or another: no such relationship, ambiguous, unknown hint.
BAD_EMBEDS = ["nope", "entries", "profiles", "breakpoints", "devices!nope", "workspaces!left!inner",
              "devices!!inner", "recent_entries", "workspaces!devices_workspace_id_fkey!inner"]  # fmt: skip
ALL_COLUMNS = sorted({c for cols in COLUMNS.values() for c in cols})
OPERATORS = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in", "is",
             "isdistinct", "fts", "plfts", "phfts", "wfts", "cs", "cd", "ov", "sl", "sr", "nxr", "nxl",
             "adj"]  # fmt: skip
QUANTIFIABLE = {"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch"}
FTS = {"fts", "plfts", "phfts", "wfts"}
JUNK_OPERATORS = ["", "not", "eqq", "EQ", "not.not", "in.in", "any", "all", "=", "~~", "between", "select"]
MODIFIERS = ["", "", "", "(any)", "(all)", "(english)", "(simple)", "(x y)", "()", "(", ")", "(any", "('a')"]
CASTS = ["text", "int", "integer", "bigint", "numeric", "json", "jsonb", "uuid", "boolean", "timestamptz",
         "date", "int4range", "text[]", "integer[]", "regclass", "oid", "bytea", "tsvector", "inet",
         "pg_catalog.text", "no_such_type", "text; drop table x", "int)", "varchar(3)", '"text"']  # fmt: skip
# Adversarial text: quotes, brackets, comments, SQL, unicode and the grammar's own punctuation out of place.
JUNK = ["'; drop table x; --", "' or '1'='1", '"; select pg_sleep(1); --', "') or true --",
        "1; commit; select 1", "union select null", "$1", "$$", "%(p0)s", "/*", "*/", "--", ";", "(", ")",
        "((", "))", "()", ",", ",,", '"', '""', '\\"', "\\", "'", "*", "**", "...", ".", "..", ":", "::", "!",
        "!!", "->", "->>", "-", "{", "}", "[", "]", "{}", "[]", "@>", "%", "%%", "_", "é", "日本語", "🙂",
        "\u202e", "\u00a0", "\t", " ", "  ", "+", "&", "=", "?", "#", "null", "NULL", "true", "NaN",
        "Infinity", "-0", "1e309", "9" * 30, "select", "pgrst_source", "_t", "json_agg",
        "information_schema.tables", "a\x00b"]  # fmt: skip
# Values that mean something to some column, including ids of rows the caller may not see (@name@ is filled in
# with this session's id of `name` when the request is sent).
VALUES = ["1", "0", "-1", "2147483648", "100", "1.5", "abc", "d1-e2e", "d2-e2e", "proxy", "ios", "GET",
          "api.example.com", "w2.example.com", "%example%", "*example*", "^api", "2026-01-01",
          "2026-01-01T00:00:00Z", "{a,b}", "{}", "{127.0.0.1/32}", "[1,10)", "(1,10]", '{"a":1}',
          '[["a","b"]]', "a & b", "a | !b", "@w1@", "@w2@", "@d1@", "@d2@", "@member@", "@outsider@",
          "00000000-0000-0000-0000-000000000000"]  # fmt: skip
PLACEHOLDERS = ("w1", "w2", "d1", "d2", "d_unpaired", "member", "outsider", "admin", "nocaps")
# Values that must be double-quoted inside an in-list or a logic tree.
NEEDS_QUOTES = re.compile(r'[,()"\\]')

any_text = st.text(st.characters(codec="utf-8"), max_size=12)
name_chars = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz_0123456789 $éß日"), min_size=1, max_size=8)
junk = st.sampled_from(JUNK)
identifier = st.one_of(name_chars, junk, st.sampled_from(ALL_COLUMNS))


def column(table: str, wild: bool) -> st.SearchStrategy[str]:
    """A column of `table`, or (wild) any name at all."""
    real = st.sampled_from(COLUMNS[table])
    if not wild:
        return real
    return st.one_of(real, real, real, real.map(lambda c: f'"{c}"'), identifier, any_text)


def value(wild: bool) -> st.SearchStrategy[str]:
    """An operand."""
    real = st.sampled_from(VALUES)
    if not wild:
        return real
    return st.one_of(real, real, junk, any_text, st.integers(-(10**20), 10**20).map(str))


def _quoted(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quoted_if_needed(v: str) -> str:
    return _quoted(v) if NEEDS_QUOTES.search(v) else v


def json_path(wild: bool) -> st.SearchStrategy[str]:
    """Nothing, or `->key` / `->>0` steps."""
    if not wild:
        key = st.sampled_from(["a", "0", "1", "-1", "name", '"q"', '"a b"'])
        return st.one_of(st.just(""), st.tuples(st.sampled_from(["->", "->>"]), key).map("".join))
    key = st.one_of(st.sampled_from(["a", "0", "-1", '"q"', '"a\\"b"', "", "->", "9" * 25]), name_chars)
    step = st.tuples(st.sampled_from(["->", "->>"]), key).map("".join)
    return st.lists(step, max_size=2).map("".join)


def select_item(table: str, wild: bool, depth: int = 0) -> st.SearchStrategy[str]:
    """One item of select=: a field (rename, JSON path, cast), `*`, or an embed / spread of its target's."""
    alias = st.one_of(st.just(""), st.just(""), (identifier if wild else name_chars).map(lambda a: f"{a}:"))
    cast = st.one_of(
        st.just(""), st.just(""), st.sampled_from(CASTS if wild else CASTS[:12]).map(lambda c: f"::{c}")
    )
    field = st.tuples(alias, column(table, wild), json_path(wild), cast).map("".join)
    star = st.sampled_from(["*", "count()", "name.count()"] if wild else ["*"])
    leaves = [field, field, star, junk] if wild else [field, field, star]
    embeds = EMBEDS.get(table, {})
    if depth >= 2 or not (embeds or wild):
        return st.one_of(*leaves)

    def embed(name: str) -> st.SearchStrategy[str]:
        target = embeds.get(name, embeds.get(name.split("!")[0], table))
        items = st.lists(select_item(target, wild, depth + 1), max_size=3).map(",".join)
        close = st.sampled_from([")", ")", ")", "", "))"]) if wild else st.just(")")
        head = st.one_of(
            alias.map(lambda a: f"{a}{name}("), st.just(f"...{name}(")
        )  # a spread takes no alias
        return st.tuples(head, items, close).map("".join)

    names = sorted(embeds) + (BAD_EMBEDS if wild else [])
    return st.one_of(*leaves, st.sampled_from(names).flatmap(embed))


def select_list(table: str, wild: bool) -> st.SearchStrategy[str]:
    """A whole select= value."""
    sep = st.sampled_from([",", ",", ", ", " , "]) if wild else st.just(",")
    items = st.lists(select_item(table, wild), min_size=1, max_size=4)
    return st.tuples(items, sep).map(lambda t: t[1].join(t[0]))


def operand_for(op: str, wild: bool, nested: bool) -> st.SearchStrategy[str]:
    """A value that fits `op`'s syntax; well-formed ones are double-quoted where a list or tree needs it."""
    if op == "in":
        if wild:
            return st.one_of(
                st.lists(value(True), max_size=4).map(lambda vs: "(" + ",".join(vs) + ")"), value(True)
            )
        item = st.one_of(value(False).map(_quoted_if_needed), value(False).map(_quoted))
        return st.lists(item, max_size=4).map(lambda vs: "(" + ",".join(vs) + ")")
    if op == "is":
        return st.sampled_from(
            ["null", "not_null", "true", "false", "unknown", "NULL"] + (["maybe", ""] if wild else [])
        )
    if op in QUANTIFIABLE and not wild:  # (any)/(all) take an array literal
        return st.one_of(
            value(False).map(_quoted_if_needed if nested else str), st.sampled_from(["{a,b}", "{1,2}"])
        )
    return value(False).map(_quoted_if_needed) if nested and not wild else value(wild)


def condition(wild: bool, nested: bool = False) -> st.SearchStrategy[str]:
    """`[not.]op[(modifier)].value`: well-formed unless wild (`nested`: inside an or=/and= tree)."""
    ops = (
        st.one_of(st.sampled_from(OPERATORS), st.sampled_from(JUNK_OPERATORS))
        if wild
        else st.sampled_from(OPERATORS)
    )

    def modifier(op: str) -> st.SearchStrategy[str]:
        if wild:
            return st.sampled_from(MODIFIERS)
        if op in QUANTIFIABLE:
            return st.sampled_from(["", "", "(any)", "(all)"])
        if op in FTS:
            return st.sampled_from(["", "(english)", "(simple)", "(no_such_config)"])
        return st.just("")

    def rest(negate: str, op: str) -> st.SearchStrategy[str]:
        return st.tuples(modifier(op), operand_for(op, wild, nested)).map(
            lambda mv: f"{negate}{op}{mv[0]}.{mv[1]}"
        )

    return st.tuples(st.sampled_from(["", "", "not."]), ops).flatmap(lambda t: rest(*t))


def _embed_names(table: str, wild: bool) -> list[str]:
    names = {e.split("!")[0] for e in EMBEDS.get(table, {})}
    return sorted(names | {"nope"} if wild else names)


def embed_path(table: str, wild: bool) -> st.SearchStrategy[str]:
    """Usually nothing, else an embed name and a dot: filters, order, limit, logic on an embedded resource."""
    names = _embed_names(table, wild)
    named = st.sampled_from(names) if names else st.nothing()
    if wild:
        named = st.one_of(named, identifier)
    return st.one_of(*[st.just("")] * (5 if wild else 11), named.map(lambda n: f"{n}."))


def logic_tree(table: str, wild: bool) -> st.SearchStrategy[str]:
    """`(a.eq.1,not.and(b.gt.2,c.is.null))`."""
    leaf = st.tuples(column(table, wild), json_path(wild), condition(wild, nested=True)).map(
        lambda t: f"{t[0]}{t[1]}.{t[2]}"
    )
    if wild:
        leaf = st.one_of(leaf, leaf, junk)

    def nest(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        kind = st.tuples(st.sampled_from(["", "not."]), st.sampled_from(["or", "and"])).map("".join)
        return st.tuples(kind, st.lists(children, min_size=1, max_size=3)).map(
            lambda t: f"{t[0]}(" + ",".join(t[1]) + ")"
        )

    trees = st.lists(st.recursive(leaf, nest, max_leaves=5), min_size=0 if wild else 1, max_size=3)
    body = trees.map(lambda items: "(" + ",".join(items) + ")")
    if wild:
        body = st.one_of(body, body, body, junk, body.map(lambda b: b[:-1]))
    return body


def order_list(table: str, wild: bool) -> st.SearchStrategy[str]:
    """`col.desc.nullslast,rel(col).asc`."""
    suffixes = [".asc", ".desc", ".nullsfirst", ".nullslast"] + ([".up", ".", ""] if wild else [])
    suffix = st.lists(st.sampled_from(suffixes), max_size=2).map("".join)
    terms = [column(table, wild)] * 4
    if _embed_names(table, wild):
        related = st.tuples(st.sampled_from(_embed_names(table, wild)), st.sampled_from(ALL_COLUMNS))
        terms.append(related.map(lambda t: f"{t[0]}({t[1]})"))
    term = st.tuples(st.one_of(*terms), json_path(wild), suffix).map("".join)
    return st.lists(term, min_size=1, max_size=3).map(",".join)


def number(wild: bool) -> st.SearchStrategy[str]:
    """limit= / offset=."""
    real = st.integers(0, 1200).map(str)
    if not wild:
        return real
    return st.one_of(
        real,
        st.sampled_from(["-1", "", "abc", "1.5", " 1", "+1", "0x10", "1e3", "9" * 20, "½"]),
        junk,
        giant_number,
    )


# Numbers past bigint, up to past Python's 4300-digit int() limit.
giant_number = st.one_of(
    st.sampled_from(["9223372036854775807", "9223372036854775808", "-9223372036854775809"]),
    st.integers(19, 6000).map(lambda n: "9" * n),
)


def deep_select(depth: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """`a(a(a(...id)))`, embeds nested `depth` deep (PostgREST's grammar allows it; the server caps it)."""
    return depth.map(lambda n: "workspaces(" * n + "id" + ")" * n)


def deep_logic(depth: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """`(or(or(...name.eq.x)))`, a logic tree nested `depth` deep."""
    return st.tuples(depth, st.sampled_from(["or", "and", "not.or"])).map(
        lambda t: "(" + f"{t[1]}(" * t[0] + "name.eq.x" + ")" * t[0] + ")"
    )


@dataclass(frozen=True)
class Query:
    """Key/value pairs and how to put them on the wire."""

    pairs: tuple[tuple[str, str], ...]
    encoding: str  # form | loose | double | raw

    def text(self, world: World) -> str:
        """The query string, ids filled in."""
        return "&".join(
            encode(fill(k, world), self.encoding) + "=" + encode(fill(v, world), self.encoding)
            for k, v in self.pairs
        )


def fill(text: str, world: World) -> str:
    """Replace @w1@ and friends with this session's ids."""
    for name in PLACEHOLDERS:
        text = text.replace(f"@{name}@", world.ids[name])
    return text


def fill_body(content: bytes, world: World) -> bytes:
    """`fill` for a body, which may not be text."""
    for name in PLACEHOLDERS:
        content = content.replace(f"@{name}@".encode(), world.ids[name].encode())
    return content


_PRINTABLE = "".join(chr(c) for c in range(33, 127))


def encode(text: str, how: str) -> str:
    """Form encoding, or what sloppier clients send: loose (punctuation raw), double-encoded, or raw."""
    if how == "form":
        return quote(text, safe="").replace("%20", "+")
    if how == "loose":
        return quote(text, safe="(),.:*!->\"'{}[]@$;/")
    if how == "double":
        return quote(quote(text, safe=""), safe="")
    # raw: only what no URL may hold is escaped; & = + # ? % change the query's structure, as junk should
    return quote(text, safe=_PRINTABLE)


def _pairs(table: str, wild: bool, select: bool, rpc_args: bool) -> list[st.SearchStrategy[tuple[str, str]]]:
    """Strategies for one key/value pair each: filters, logic trees, order, limit/offset, select, junk."""
    path = embed_path(table, wild)
    filter_pair = st.tuples(
        st.tuples(path, column(table, wild), json_path(wild)).map("".join), condition(wild)
    )
    logic_key = st.tuples(path, st.sampled_from(["", "", "not."]), st.sampled_from(["or", "and"])).map(
        "".join
    )
    pieces = [
        filter_pair,
        filter_pair,
        st.tuples(logic_key, logic_tree(table, wild)),
        st.tuples(path.map(lambda p: f"{p}order"), order_list(table, wild)),
        st.tuples(path.map(lambda p: f"{p}limit"), number(wild)),
        st.tuples(path.map(lambda p: f"{p}offset"), number(wild)),
    ]
    if select:
        pieces.append(st.tuples(st.just("select"), select_list(table, wild)))
    if wild:
        reserved = st.sampled_from(["columns", "on_conflict", "apikey", "select", "", "limit", "or"])
        pieces.append(st.tuples(reserved, st.one_of(junk, any_text)))
        pieces.append(st.tuples(st.one_of(identifier, any_text), st.one_of(value(True), condition(True))))
        # Deep nesting and long JSON paths: each level is a frame in the parser and SQL in Postgres.
        depth = st.one_of(st.integers(1, 40), st.integers(40, 2500))
        pieces.append(st.tuples(st.just("select"), deep_select(depth)))
        pieces.append(st.tuples(st.sampled_from(["or", "and", "not.or"]), deep_logic(depth)))
        long_path = st.integers(1, 3000).map(lambda n: "name" + "->a" * n)
        pieces.append(st.tuples(long_path, condition(False)))
    if rpc_args:
        names = ["limit", "host", "device", "since", "section", "action", "device_uuid", "batch", "x"]
        pieces.append(st.tuples(st.sampled_from(names), value(wild)))
    return pieces


def query(
    table: str, *, wild: bool, force_select: str | None = None, rpc_args: bool = False
) -> st.SearchStrategy[Query]:
    """A query string for GET `table` (or for the RPC whose result columns `table` names).

    Wild queries mix well-formed pairs (five in six) with wild ones, so that most requests still reach the
    database while each may carry some junk. `force_select` leads the select list.
    """
    clean = _pairs(table, False, force_select is None, rpc_args)
    pieces = clean * 5 + _pairs(table, True, force_select is None, rpc_args) if wild else clean
    pairs = st.lists(st.one_of(*pieces), max_size=5)
    if force_select is not None:
        forced = force_select
        extended = st.tuples(st.just("select"), select_list(table, False).map(lambda s: f"{forced},{s}"))
        pairs = st.tuples(st.one_of(st.just(("select", forced)), extended), pairs).map(
            lambda t: [t[0], *t[1]]
        )
    encodings = ["form"] * 4 + ["loose"] * 3 + ["double", "raw"] if wild else ["form", "loose"]
    return st.builds(lambda p, e: Query(tuple(p), e), pairs, st.sampled_from(encodings))


ACCEPTS = [None] * 6 + ["application/json", "*/*", "application/vnd.pgrst.object+json", "text/csv",
                        "application/vnd.pgrst.array+json;nulls=stripped", "application/geo+json",
                        "text/html",
                        "application/vnd.pgrst.object+json; nulls=stripped", "application/json, */*;q=0.1",
                        'junk/junk; x="', ""]  # fmt: skip
PREFERS = [None, None, "count=exact", "count=planned", "count=estimated", "return=representation",
           "return=minimal", "return=headers-only", "handling=strict", "handling=strict, max-affected=1",
           "resolution=merge-duplicates", "resolution=ignore-duplicates", "missing=default", "tx=rollback",
           "timezone=America/New_York", "timezone=Nowhere/At_All", "count=exact, return=representation",
           "junk=1,,"]  # fmt: skip
RANGES = [None] * 6 + ["0-1", "items=0-0", "5-", "10-2", "a-b", "0-99999999999999999999", "0-" + "9" * 5000,
                       "9" * 5000 + "-", "9223372036854775807-9223372036854775807"]  # fmt: skip
PROFILES = [None] * 12 + ["public", "public", "private", "auth", "Public", "no such schema"]


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    """Accept, Prefer, Range and profile headers, sometimes."""
    out: dict[str, str] = {}
    for name, choices in (("accept", ACCEPTS), ("prefer", PREFERS), ("range", RANGES)):
        chosen = draw(st.sampled_from(choices))
        if chosen is not None:
            out[name] = chosen
    profile = draw(st.sampled_from(PROFILES))
    if profile is not None:
        out[draw(st.sampled_from(["accept-profile", "content-profile"]))] = profile
    return out


json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
    st.sampled_from(VALUES),
    junk,
)
json_value = st.recursive(
    json_scalar,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.one_of(any_text, junk), kids, max_size=3)
    ),
    max_leaves=8,
)


def row(table: str) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object keyed mostly by the table's columns."""
    keys = st.one_of(st.sampled_from(COLUMNS[table]), st.sampled_from(COLUMNS[table]), identifier)
    return st.dictionaries(keys, json_value, max_size=5)


BAD_BODIES = [b"", b"{", b"[1,", b"nul", b"\xff\xfe", b'{"a":1}{', b"[" * 2000, b"1e99999",
              b'{"a": 123456789012345678901234567890}', b"not json",
              # Nested deeper than orjson writes (254) but not than it reads (1024), in a column or argument.
              b'{"name": ' + b"[" * 1000 + b"]" * 1000 + b"}",
              b'{"doc": ' + b'{"a":' * 600 + b"1" + b"}" * 601,
              b'{"limit": ' + b"[" * 300 + b"]" * 300 + b"}", b"[" * 1000 + b"]" * 1000,
              b'{"n": ' + b"9" * 5000 + b"}"]  # fmt: skip


@st.composite
def body(draw: st.DrawFn, table: str) -> tuple[bytes, str | None]:
    """A request body and its Content-Type."""
    kind = draw(st.sampled_from(["row", "row", "rows", "rows", "json", "bad", "csv", "form"]))
    if kind == "row":
        ctype = draw(st.sampled_from([None, "application/json", "application/json; charset=utf-8"]))
        return json.dumps(draw(row(table))).encode(), ctype
    if kind == "rows":
        return json.dumps(draw(st.lists(row(table), max_size=3))).encode(), "application/json"
    if kind == "json":
        return json.dumps(draw(json_value)).encode(), draw(
            st.sampled_from([None, "application/json", "text/plain"])
        )
    if kind == "bad":
        ctype = draw(
            st.sampled_from([None, "application/json", "application/octet-stream", "text/xml", "x/y"])
        )
        return draw(st.sampled_from(BAD_BODIES)), ctype
    if kind == "csv":
        cols = draw(st.lists(st.sampled_from(COLUMNS[table]), min_size=1, max_size=3, unique=True))
        cells = st.sampled_from([*VALUES, "NULL", '"a,b"', ""])
        values = draw(st.lists(cells, min_size=len(cols), max_size=len(cols)))
        return (",".join(cols) + "\n" + ",".join(values)).encode(), "text/csv"
    pairs = draw(st.lists(st.tuples(st.sampled_from(COLUMNS[table]), st.sampled_from(VALUES)), max_size=3))
    return "&".join(
        f"{k}={quote(v, safe='@')}" for k, v in pairs
    ).encode(), "application/x-www-form-urlencoded"


# -- what every answer must satisfy --------------------------------------------------------------------------

# Lower-cased pieces of the SQL the handler writes: none may appear in an error unless the request held it.
SQL_MARKERS = ("select ", "pgrst_source", "json_agg", "row_to_json", " _t", "(_t", "_t)", "as _e", "as _c",
               ' from "', '"public"."', "set_config", "current_setting", "json_to_record",
               "json_array_elements", "%(p", "$1", "coalesce(", "limit %", "begin isolation")  # fmt: skip
# Our own messages that name the select parameter, removed before looking for markers.
LEGIT = re.compile(r"failed to parse select parameter|'select' query parameter")
# Only SQL we wrote can fail like this (tsquery syntax errors read differently): every column we write is
# qualified and every parameter typed.
BROKEN_SQL = re.compile(
    r"syntax error at (or near|end of input)|could not determine data type of parameter|"
    r"inconsistent types deduced for parameter|bind message supplies"
)
OUR_SQL_CODES = {"42702", "42P18", "42P08", "08P01"}


@dataclass(frozen=True)
class Sent:
    """What a request said: all of it, lower-cased and decoded every way the server might decode it; and its
    parameters and body one by one (messages echo those whole, so they are blanked out before looking)."""

    text: str
    pieces: tuple[str, ...]

    def scrub(self, message: str) -> str:
        """`message` with every echoed parameter blanked out."""
        for piece in self.pieces:
            message = message.replace(piece, "\x00")
        return message


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _strings(doc: Any) -> Iterator[str]:
    """Every key and string value in a JSON document."""
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, list):
        for item in doc:
            yield from _strings(item)
    elif isinstance(doc, dict):
        for key, item in doc.items():
            yield key
            yield from _strings(item)


def sent(url: str, content: bytes) -> Sent:
    """Sent for a request to `url` with `content` as its body."""
    raw = url + "\n" + content.decode("utf-8", "replace")
    once = unquote_plus(raw, errors="replace")
    text = "\n".join(
        (raw, once, unquote(once, errors="replace"), unquote_plus(once, errors="replace"))
    ).lower()
    pieces = {
        p.lower() for kv in parse_qsl(url.partition("?")[2], keep_blank_values=True) for p in kv if len(p) > 1
    }
    pieces.add(content.decode("utf-8", "replace").lower())
    pieces.update(
        p.lower() for p in _strings(_json_or_none(content)) if len(p) > 1
    )  # keys and values echo too
    return Sent(text, tuple(sorted(pieces, key=len, reverse=True)))


@dataclass(frozen=True)
class KnownBug:
    """A server bug the fuzz found: `check` lets it pass until its xfail test (end of file) flips."""

    name: str
    matches: Callable[[httpx.Response, dict[str, Any]], bool]


KNOWN_BUGS: tuple[KnownBug, ...] = ()


def check(response: httpx.Response, said: Sent) -> Any:
    """No 5xx; errors in PostgREST's shape with no SQL of ours in them; JSON that parses. Returns the JSON."""
    request = f"{response.request.method} {response.request.url}"
    ctype = response.headers.get("content-type", "")
    if response.status_code < 400:
        return response.json() if response.content and "json" in ctype else None
    assert ctype.startswith("application/json"), f"{request} -> {response.status_code} {ctype}"
    doc = response.json()
    assert isinstance(doc, dict), f"{request} -> {doc}"
    assert set(doc) == {"code", "details", "hint", "message"}, f"{request} -> {doc}"
    assert isinstance(doc["message"], str), f"{request} -> {doc}"
    assert isinstance(doc["code"], str), f"{request} -> {doc}"
    if any(bug.matches(response, doc) for bug in KNOWN_BUGS):
        return doc
    assert response.status_code < 500, f"{request} -> {response.status_code} {doc}"
    for key in ("message", "details", "hint"):
        part = doc[key] if isinstance(doc[key], str) else json.dumps(doc[key])
        text = said.scrub(LEGIT.sub("", part.lower()))
        leaked = [m for m in SQL_MARKERS if m in text and m not in said.text]
        assert not leaked, f"{request} -> {key} quotes our SQL ({leaked}): {doc}"
    broken = doc["code"] in OUR_SQL_CODES or BROKEN_SQL.search(doc["message"])
    assert not broken, f"{request} -> the server wrote broken SQL: {doc}"
    return doc


# -- fixtures and helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http(stack: Settings) -> Iterator[httpx.Client]:
    """One keep-alive client for the whole module."""
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def traffic(stack: Settings, world: World) -> Iterator[dict[str, list[str]]]:
    """Four captured flows in each workspace (written as postgres, which bypasses RLS); removed afterwards."""
    ids: dict[str, list[str]] = {"w1": [], "w2": []}
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        for ws, device, host in (("w1", "d1", "api.example.com"), ("w2", "d2", "w2.example.com")):
            for i in range(4):
                entry = str(uuid.uuid4())
                conn.execute(
                    "insert into public.entries (id, workspace_id, device_uuid, source, captured_at, method, "
                    "host, path, status, duration_ms, request_headers, response_headers, request_body, "
                    "response_body) "
                    "values (%s, %s, %s, 'proxy', now() - make_interval(mins => %s), %s, %s, %s, %s, 1.5, "
                    "'[[\"Authorization\", \"Bearer secret\"], [\"Accept\", \"*/*\"]]', "
                    "'[[\"Content-Type\", \"application/json\"]]', convert_to('{\"a\": 1}', 'UTF8'), "
                    "'\\xff00'::bytea)",
                    (entry, world.ids[ws], world.ids[device], i, "GET" if i % 2 else "POST", host, f"/v1/{i}",
                     200 + i),
                )  # fmt: skip
                ids[ws].append(entry)
    yield ids
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        conn.execute("delete from public.entries where id = any(%s)", (ids["w1"] + ids["w2"],))


def caller(world: World, who: str) -> dict[str, str]:
    """The headers a supabase client sends for `who` (anon: the key alone)."""
    out = {"apikey": world.anon_key}
    if who != "anon":
        out["authorization"] = f"Bearer {world.tokens[who]}"
    return out


def get(
    http: httpx.Client, world: World, who: str, path: str, q: Query, extra: dict[str, str]
) -> tuple[httpx.Response, Sent]:
    """GET path?query as `who`; the response and what was sent."""
    url = f"{path}?{q.text(world)}"
    return http.get(url, headers={**caller(world, who), **extra}), sent(url, b"")


def _snapshot(stack: Settings) -> list[tuple[object, ...]]:
    """Every workspace, device and entry, as the superuser sees them."""
    with psycopg.connect(stack.db_url()) as conn:
        return conn.execute(
            "select 'w', to_jsonb(w)::text from public.workspaces as w union all "
            "select 'd', to_jsonb(d)::text from public.devices as d union all "
            "select 'e', id::text || host || status::text from public.entries order by 1, 2"
        ).fetchall()


def _rows(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)]
    return []


# -- (a) no 5xx, PostgREST's error shape, no SQL of ours in errors -------------------------------------------

TABLES = ["devices", "entries", "workspaces"]
IDENTITIES = ["member", "member", "outsider", "admin", "nocaps", "anon", "d1"]
RPCS = ["recent_entries", "count_entries", "inspect_requests", "whoami", "my_capabilities", "has_capability",
        "effective_settings", "no_such_function", "ingest_entries"]  # fmt: skip
RPC_ARGS = st.fixed_dictionaries(
    {},
    optional={
        k: json_scalar for k in ("limit", "host", "device", "since", "section", "action", "device_uuid")
    },
)


def test_reads_never_fail_or_leak_sql(http: httpx.Client, world: World, traffic: object) -> None:
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(
        st.sampled_from(TABLES).flatmap(lambda t: st.tuples(st.just(t), query(t, wild=True))),
        st.sampled_from(IDENTITIES),
        headers(),
    )
    def run(target: tuple[str, Query], who: str, extra: dict[str, str]) -> None:
        table, q = target
        response, said = get(http, world, who, f"/rest/v1/{table}", q, extra)
        check(response, said)
        statuses[response.status_code] += 1

    run()
    assert statuses[200], statuses  # some of the fuzz got through to the database


def test_rpc_calls_never_fail_or_leak_sql(http: httpx.Client, world: World, traffic: object) -> None:
    """GET with arguments in the query, or POST with a random body; ingest_entries only by GET (refused)."""
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(
        st.sampled_from(RPCS),
        query("recent_entries", wild=True, rpc_args=True),
        st.sampled_from(["member", "outsider", "admin", "anon", "nocaps"]),
        headers(),
        st.one_of(st.none(), json_value, row("recent_entries"), RPC_ARGS),
    )
    def run(fn: str, q: Query, who: str, extra: dict[str, str], payload: Any) -> None:
        if payload is None or fn == "ingest_entries":  # never POST a batch: that would write
            response, said = get(http, world, who, f"/rest/v1/rpc/{fn}", q, extra)
        else:
            url = f"/rest/v1/rpc/{fn}?{q.text(world)}"
            content = fill(json.dumps(payload), world).encode()
            hdrs = {**caller(world, who), **extra, "content-type": "application/json"}
            response, said = http.post(url, content=content, headers=hdrs), sent(url, content)
        check(response, said)
        statuses[response.status_code] += 1

    run()
    assert statuses[200], statuses


def test_writes_to_guarded_tables_never_fail_or_leak_sql(
    http: httpx.Client, stack: Settings, world: World, traffic: object
) -> None:
    """POST and PATCH with random bodies where the caller may not write: refused, not 5xx, nothing changes."""
    before = _snapshot(stack)

    @FUZZ
    @given(
        st.sampled_from(TABLES).flatmap(lambda t: st.tuples(st.just(t), query(t, wild=True), body(t))),
        st.sampled_from(["POST", "PATCH"]),
        st.sampled_from(["member", "outsider", "nocaps", "anon"]),
        headers(),
    )
    def run(
        target: tuple[str, Query, tuple[bytes, str | None]], method: str, who: str, extra: dict[str, str]
    ) -> None:
        table, q, (raw, ctype) = target
        content = fill_body(raw, world)
        url = f"/rest/v1/{table}?{q.text(world)}"
        hdrs = {**caller(world, who), **extra, **({"content-type": ctype} if ctype else {})}
        response = http.request(method, url, content=content, headers=hdrs)
        check(response, sent(url, content))
        assert response.status_code >= 400, f"{method} {url} {content[:200]!r} -> {response.status_code}"

    run()
    assert _snapshot(stack) == before


# -- (b) RLS: nothing the caller may not see -----------------------------------------------------------------

# Whose rows each identity may receive, per table (nocaps has no capability: no devices, no traffic).
VISIBLE = {
    "member": {"devices": {"w1"}, "entries": {"w1"}, "workspaces": {"w1"}},
    "outsider": {"devices": {"w2"}, "entries": {"w2"}, "workspaces": {"w2"}},
    "nocaps": {"devices": set(), "entries": set(), "workspaces": {"w1"}},
}
# What every RLS probe selects first: the row's workspace and, where there is one, an embedded relation's.
# No strategy writes an upper-case name, so no random item can shadow these keys in the JSON.
RLS_KEY, RLS_EMBED = "RLS_ws", "RLS_embed"
FORCED = {
    "devices": f"{RLS_KEY}:workspace_id,{RLS_EMBED}:workspaces({RLS_KEY}:id)",
    "entries": f"{RLS_KEY}:workspace_id",
    "workspaces": f"{RLS_KEY}:id,{RLS_EMBED}:devices({RLS_KEY}:workspace_id)",
    "recent_entries": f"{RLS_KEY}:workspace_id",
}


def _assert_visible(world: World, who: str, table: str, doc: Any, request: str) -> int:
    """Every row (and embedded row) belongs to a workspace `who` may read; how many rows came back."""
    ids = {name: {world.ids[w] for w in spaces} for name, spaces in VISIBLE[who].items()}
    rows = _rows(doc)
    for r in rows:
        assert r.get(RLS_KEY) in ids["entries" if table == "recent_entries" else table], f"{request} -> {r}"
        embedded = r.get(RLS_EMBED)
        if table == "devices" and embedded is not None:  # the device's workspace
            assert embedded[RLS_KEY] in ids["workspaces"], f"{request} -> {r}"
        if table == "workspaces":  # the workspace's devices
            assert all(d[RLS_KEY] in ids["devices"] for d in embedded or []), f"{request} -> {r}"
    return len(rows)


@pytest.mark.parametrize("who", ["member", "outsider", "nocaps"])
def test_rls_hides_other_workspaces_whatever_the_query(
    http: httpx.Client, world: World, traffic: object, who: str
) -> None:
    seen: Counter[str] = Counter()

    def probe(table: str) -> st.SearchStrategy[tuple[str, Query]]:
        forced = FORCED[table]
        queries = query(table, wild=False, force_select=forced) | query(table, wild=True, force_select=forced)
        return st.tuples(st.just(table), queries)

    @FUZZ
    @given(
        st.sampled_from(TABLES).flatmap(probe),
        st.sampled_from([{}, {}, {"accept": "application/vnd.pgrst.object+json"}, {"prefer": "count=exact"}]),
    )
    def run(target: tuple[str, Query], extra: dict[str, str]) -> None:
        table, q = target
        response, said = get(http, world, who, f"/rest/v1/{table}", q, extra)
        doc = check(response, said)
        if response.status_code < 300:
            seen[table] += _assert_visible(world, who, table, doc, str(response.request.url))

    run()
    if who != "nocaps":  # the property was exercised
        assert seen["devices"], seen
        assert seen["entries"], seen
        assert seen["workspaces"], seen


@pytest.mark.parametrize("who", ["member", "outsider"])
def test_rls_hides_other_workspaces_in_rpc_results(
    http: httpx.Client, world: World, traffic: object, who: str
) -> None:
    seen: Counter[str] = Counter()

    @FUZZ
    @given(query("recent_entries", wild=False, force_select=FORCED["recent_entries"], rpc_args=True))
    def run(q: Query) -> None:
        response, said = get(http, world, who, "/rest/v1/rpc/recent_entries", q, {})
        doc = check(response, said)
        if response.status_code < 300:
            seen["rows"] += _assert_visible(world, who, "recent_entries", doc, str(response.request.url))

    run()
    assert seen["rows"], seen


# -- writes that really run: a scratch table with a workspace policy -----------------------------------------

SCRATCH = """
create table public.fuzz_scratch (
    id bigint generated by default as identity primary key,
    workspace_id uuid not null,
    label text check (length(label) < 100),
    n integer,
    amount numeric(8, 2),
    flag boolean,
    tags text[],
    doc jsonb,
    at timestamptz,
    ref uuid,
    span int4range
);
alter table public.fuzz_scratch enable row level security;
grant select, insert, update on public.fuzz_scratch to authenticated;
grant usage on sequence public.fuzz_scratch_id_seq to authenticated;
create policy "fuzz_scratch: my workspaces" on public.fuzz_scratch for all to authenticated
using (workspace_id = any((select private.my_workspaces())::uuid[]))
with check (workspace_id = any((select private.my_workspaces())::uuid[]));
"""


@pytest.fixture(scope="module")
def scratch(
    http: httpx.Client, stack: Settings, world: World
) -> Iterator[Callable[[], list[tuple[object, ...]]]]:
    """public.fuzz_scratch with rows in w1 and w2, once the schema cache has it; dropped afterwards.

    Yields a function returning the rows outside w1, as the superuser sees them.
    """
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        conn.execute(SCRATCH)
        for ws in ("w1", "w2"):
            conn.execute(
                "insert into public.fuzz_scratch (workspace_id, label, n, tags, doc) "
                "select %s, 'seed ' || g, g, array['a', 'b'], jsonb_build_object('g', g) "
                "from generate_series(1, 3) as g",
                (world.ids[ws],),
            )
        conn.execute("notify pgrst, 'reload schema'")

    def outside_w1() -> list[tuple[object, ...]]:
        with psycopg.connect(stack.db_url()) as c:
            return c.execute(
                "select to_jsonb(s)::text from public.fuzz_scratch as s where workspace_id <> %s order by id",
                (world.ids["w1"],),
            ).fetchall()

    try:
        for _ in range(200):
            if http.get("/rest/v1/fuzz_scratch?limit=0", headers=caller(world, "member")).status_code == 200:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the schema cache never picked up public.fuzz_scratch")
        yield outside_w1
    finally:
        with psycopg.connect(stack.db_url(), autocommit=True) as conn:
            conn.execute("drop table if exists public.fuzz_scratch")
            conn.execute("notify pgrst, 'reload schema'")


SCRATCH_PREFERS = [
    "return=representation",
    "return=representation,resolution=merge-duplicates",
    "return=representation,resolution=ignore-duplicates",
    "return=minimal",
    "tx=rollback",
]


def test_writes_that_run_never_fail_leak_sql_or_cross_workspaces(
    http: httpx.Client, world: World, scratch: Callable[[], list[tuple[object, ...]]]
) -> None:
    """Random inserts, upserts and updates as `member`: other workspaces' rows never change or come back."""
    before = scratch()
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(
        st.sampled_from(["POST", "POST", "PATCH"]),
        query("fuzz_scratch", wild=True),
        body("fuzz_scratch"),
        headers(),
        st.sampled_from(SCRATCH_PREFERS),
    )
    def run(
        method: str, q: Query, payload: tuple[bytes, str | None], extra: dict[str, str], prefer: str
    ) -> None:
        content, ctype = fill_body(payload[0], world), payload[1]
        url = f"/rest/v1/fuzz_scratch?{q.text(world)}"
        hdrs = {
            **caller(world, "member"),
            "prefer": prefer,
            **extra,
            **({"content-type": ctype} if ctype else {}),
        }
        response = http.request(method, url, content=content, headers=hdrs)
        doc = check(response, sent(url, content))
        statuses[response.status_code] += 1
        if response.status_code < 300:
            for r in _rows(doc):
                assert r.get("workspace_id", world.ids["w1"]) == world.ids["w1"], (
                    f"{method} {url} {content!r} -> {r}"
                )

    run()
    assert scratch() == before
    assert statuses[201] + statuses[200], statuses  # some writes went through


# -- bugs the fuzz found, fixed: kept as regression tests; add new ones to KNOWN_BUGS with a strict xfail ----


@pytest.mark.parametrize("query_string", ["name=eq.%00", "name=in.(a,%00)", "select=name&name=like.a%00*"])
def test_a_nul_byte_in_a_value_is_a_client_error(http: httpx.Client, world: World, query_string: str) -> None:
    """Postgres refuses NUL in text (22021, a 400); the server turns psycopg's client-side error into 500."""
    response = http.get(f"/rest/v1/devices?{query_string}", headers=caller(world, "member"))
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("content", [b"[1, 2]", b"[]", b'"x"', b"3", b"null"])
def test_an_rpc_body_that_is_not_an_object_is_a_client_error(
    http: httpx.Client, world: World, content: bytes
) -> None:
    """POST /rpc/fn with a JSON array or scalar, fn not taking one json argument: a 4xx, not an assertion."""
    hdrs = {**caller(world, "member"), "content-type": "application/json"}
    response = http.post("/rest/v1/rpc/recent_entries", content=content, headers=hdrs)
    assert 400 <= response.status_code < 500, response.text


def test_csv_with_a_repeated_output_name(http: httpx.Client, world: World) -> None:
    """select=id,id is fine as JSON (keys repeat), so it should be as CSV; it fails with 42702 instead."""
    response = http.get(
        "/rest/v1/workspaces?select=id,id", headers={**caller(world, "member"), "accept": "text/csv"}
    )
    assert response.status_code == 200, response.text
