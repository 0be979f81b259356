"""Parse PostgREST's query grammar: what a parameter parses into, the reader every parameter's parser uses,
and select=, order=, columns= (filters and or=/and= trees: filters.py)
(https://docs.postgrest.org/en/v14/references/api/tables_views.html).

Nothing here knows the schema: names come out as plain strings and are checked against the schema cache when
the SQL is built. A parameter that does not parse raises PGRST100 with the column where parsing stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from busymate.gateway.rest.errors import ApiError, parse_error

OPERATORS = {
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "like",
    "ilike",
    "match",
    "imatch",
    "in",
    "is",
    "isdistinct",
    "fts",
    "plfts",
    "phfts",
    "wfts",
    "cs",
    "cd",
    "ov",
    "sl",
    "sr",
    "nxr",
    "nxl",
    "adj",
}
QUANTIFIABLE = {"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch"}
FTS = {"fts", "plfts", "phfts", "wfts"}
IS_VALUES = {"null", "not_null", "true", "false", "unknown"}
_NAME_CHARS = re.compile(r"[A-Za-z0-9_$ \u0080-\uffff]")
# Embeds within embeds, and or=/and= trees within trees, go no deeper than this; nor do JSON paths run longer.
# PostgREST sets no limit, but every level is a Python frame here and an expression or subquery in Postgres,
# whose own stack limit would otherwise turn a deep enough query into a 500.
MAX_NESTING = 32
MAX_JSON_STEPS = 64


@dataclass(frozen=True)
class JsonStep:
    """One `->key`, `->>key`, `->0` step."""

    arrow: str  # "->" or "->>"
    key: str
    is_index: bool


@dataclass
class Field:
    """A column in select=, with an optional rename, JSON path and cast."""

    name: str
    alias: str | None = None
    path: tuple[JsonStep, ...] = ()
    cast: str | None = None
    aggregate: str | None = None

    @property
    def key(self) -> str:
        """The output key: the alias, else the last JSON key, else the column name."""
        if self.alias:
            return self.alias
        for step in reversed(self.path):
            if not step.is_index:
                return step.key
        return self.name


@dataclass
class Embed:
    """A related resource in select=: `alias:rel!hint!inner(...)` or `...rel(...)`."""

    name: str
    alias: str | None = None
    hints: list[str] = field(default_factory=list)
    join: str | None = None  # "inner" or "left"
    spread: bool = False
    items: list[Field | Embed] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The output key (and the path segment filters use)."""
        return self.alias or self.name


@dataclass
class Filter:
    """`col[json path]=[not.]op[(mod)].value` at some embed path."""

    path: tuple[str, ...]
    column: str
    json_path: tuple[JsonStep, ...]
    negate: bool
    op: str
    modifier: str | None  # any / all for quantified operators, the language for fts
    value: str | list[str]


@dataclass
class Logic:
    """`or=(...)` / `and=(...)`, possibly negated, at some embed path."""

    path: tuple[str, ...]
    op: str  # "or" / "and"
    negate: bool
    items: list[Filter | Logic]


@dataclass(frozen=True)
class OrderTerm:
    """One term of order=."""

    column: str
    json_path: tuple[JsonStep, ...] = ()
    relation: str | None = None  # order=rel(col)
    direction: str | None = None  # "asc" / "desc"
    nulls: str | None = None  # "first" / "last"


class Reader:
    """A cursor over one parameter's text, raising PGRST100 with the position on failure."""

    def __init__(self, what: str, text: str) -> None:
        self.what = what
        self.text = text
        self.pos = 0
        self.depth = 0

    def nest(self) -> None:
        """One level deeper (an embed, a nested tree); PGRST100 past MAX_NESTING."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise parse_error(self.what, self.text, self.pos, f"nested more than {MAX_NESTING} levels deep")

    def fail(self, expecting: str) -> ApiError:
        found = (
            f'unexpected "{self.text[self.pos]}"' if self.pos < len(self.text) else "unexpected end of input"
        )
        return parse_error(self.what, self.text, self.pos, f"{found} expecting {expecting}")

    def peek(self, s: str) -> bool:
        return self.text.startswith(s, self.pos)

    def take(self, s: str) -> bool:
        if self.text.startswith(s, self.pos):
            self.pos += len(s)
            return True
        return False

    def expect(self, s: str) -> None:
        if not self.take(s):
            raise self.fail(f'"{s}"')

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\n":
            self.pos += 1

    def quoted(self) -> str:
        """A double-quoted name or value, backslash escapes inside."""
        self.expect('"')
        out = []
        while True:
            if self.at_end():
                raise self.fail('closing "')
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "\\" and not self.at_end():
                out.append(self.text[self.pos])
                self.pos += 1
            elif ch == '"':
                return "".join(out)
            else:
                out.append(ch)

    def name(self, expecting: str = "field name") -> str:
        """A quoted name, or letters, digits, `_`, `$`, spaces and single `-` (never `->`)."""
        if self.peek('"'):
            return self.quoted()
        start = self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if _NAME_CHARS.match(ch) or (
                ch == "-"
                and not self.peek("->")
                and self.pos + 1 < len(self.text)
                and self.text[self.pos + 1] not in "-"
            ):
                self.pos += 1
            else:
                break
        value = self.text[start : self.pos].strip()
        if not value:
            self.pos = start
            raise self.fail(expecting)
        return value

    def json_path(self) -> tuple[JsonStep, ...]:
        steps: list[JsonStep] = []
        while self.peek("->"):
            if len(steps) == MAX_JSON_STEPS:
                raise parse_error(
                    self.what, self.text, self.pos, f"a JSON path of more than {MAX_JSON_STEPS} steps"
                )
            arrow = "->>" if self.take("->>") else ("->" if self.take("->") else "")
            if self.peek('"'):
                steps.append(JsonStep(arrow, self.quoted(), False))
                continue
            start = self.pos
            if self.peek("-"):
                self.pos += 1
            while self.pos < len(self.text) and (
                _NAME_CHARS.match(self.text[self.pos]) and self.text[self.pos] != " "
            ):
                self.pos += 1
            key = self.text[start : self.pos]
            if not key or key == "-":
                self.pos = start
                raise self.fail("a JSON key or array index")
            steps.append(JsonStep(arrow, key, bool(re.fullmatch(r"-?\d+", key))))
        return tuple(steps)


def _strip_outside_quotes(text: str) -> str:
    out, quoted = [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if quoted or ch not in " \t\n":
            out.append(ch)
    return "".join(out) if not quoted else text


def parse_select(text: str) -> list[Field | Embed]:
    """select= into fields and embeds."""
    if text.strip() == "":
        return [Field("*")]
    reader = Reader("select parameter", text)
    items = _select_items(reader, top=True)
    if not reader.at_end():
        raise reader.fail('"," or end of input')
    return items


def _select_items(r: Reader, top: bool) -> list[Field | Embed]:
    items: list[Field | Embed] = []
    r.skip_spaces()
    if not top and r.peek(")"):
        return items
    while True:
        r.skip_spaces()
        items.append(_select_item(r))
        r.skip_spaces()
        if not r.take(","):
            return items


def _select_item(r: Reader) -> Field | Embed:
    if r.take("..."):
        name = r.name("a relation to spread")
        embed = Embed(name, spread=True)
        _embed_rest(r, embed)
        return embed
    if r.take("*"):
        return Field("*")
    start = r.pos
    first = r.name()
    alias = None
    if r.peek(":") and not r.peek("::"):
        r.take(":")
        alias = first
        r.skip_spaces()
        if r.take("..."):
            raise parse_error(r.what, r.text, start, 'unexpected "..." after an alias')
        first = r.name()
    if r.peek("!") or r.peek("("):
        embed = Embed(first, alias=alias)
        _embed_rest(r, embed)
        return embed
    path = r.json_path()
    cast = None
    aggregate = None
    if r.peek(".") and re.match(r"\.(count|sum|avg|max|min)\(\)", r.text[r.pos :]):
        aggregate = r.text[r.pos + 1 : r.text.index("(", r.pos)]
        r.pos = r.text.index(")", r.pos) + 1
    elif first == "count" and r.take("()"):
        aggregate = "count"
    if r.take("::"):
        cast = r.name("a type name")
    r.skip_spaces()
    return Field(first, alias=alias, path=path, cast=cast, aggregate=aggregate)


def _embed_rest(r: Reader, embed: Embed) -> None:
    while r.take("!"):
        hint = r.name("a hint or inner/left")
        if hint in ("inner", "left"):
            embed.join = hint
        else:
            embed.hints.append(hint)
    r.expect("(")
    r.nest()
    embed.items = _select_items(r, top=False)
    r.depth -= 1
    r.skip_spaces()
    r.expect(")")


def parse_order(path: tuple[str, ...], text: str) -> list[OrderTerm]:
    """order=col.desc.nullslast,other,rel(col).asc"""
    reader = Reader("order", text)
    terms = []
    while True:
        reader.skip_spaces()
        name = reader.name("a column to order by")
        relation = None
        if reader.take("("):
            relation = name
            name = reader.name()
            reader.expect(")")
        json_path = reader.json_path()
        direction = nulls = None
        while reader.take("."):
            if reader.take("asc"):
                direction = "asc"
            elif reader.take("desc"):
                direction = "desc"
            elif reader.take("nullsfirst"):
                nulls = "first"
            elif reader.take("nullslast"):
                nulls = "last"
            else:
                raise reader.fail('"asc", "desc", "nullsfirst" or "nullslast"')
        terms.append(OrderTerm(name, json_path, relation, direction, nulls))
        if reader.at_end():
            return terms
        if not reader.take(","):
            raise reader.fail('"," or end of input')


def parse_columns(text: str) -> list[str]:
    """columns="a","b" or on_conflict=a,b: a list of names."""
    reader = Reader("columns", _strip_outside_quotes(text))
    names = []
    while True:
        names.append(reader.name("a column name"))
        if reader.at_end():
            return names
        if not reader.take(","):
            raise reader.fail('"," or end of input')
