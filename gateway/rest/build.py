"""Turn a parsed request into one SQL statement whose single row carries the whole response body
(docs/rest.md, "A request, end to end").

Identifiers come only from the schema cache and are quoted; every value from the request is a bound parameter
(psycopg sends `str` with the unknown type, so Postgres infers each value's type from its column).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from busymate.gateway.rest.errors import ApiError
from busymate.gateway.rest.parse import Embed, Field, Filter, JsonStep, Logic, OrderTerm
from busymate.gateway.rest.relationships import resolve
from busymate.gateway.rest.schema import Column, Relation, Relationship, SchemaCache, quote

_COMPARE = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "like",
    "ilike": "ilike",
    "match": "~",
    "imatch": "~*",
    "isdistinct": "is distinct from",
    "cs": "@>",
    "cd": "<@",
    "ov": "&&",
    "sl": "<<",
    "sr": ">>",
    "nxr": "&<",
    "nxl": "&>",
    "adj": "-|-",
}
_FTS = {
    "fts": "to_tsquery",
    "plfts": "plainto_tsquery",
    "phfts": "phraseto_tsquery",
    "wfts": "websearch_to_tsquery",
}
_IS = {
    "null": "is null",
    "not_null": "is not null",
    "true": "is true",
    "false": "is false",
    "unknown": "is unknown",
}


@dataclass
class Node:
    """One relation in the request tree: the top one, or an embed under its parent."""

    rel: Relation
    alias: str
    items: list[Field | Embed]
    relationship: Relationship | None = None
    embed: Embed | None = None
    children: list[Node] = field(default_factory=list)
    filters: list[Filter | Logic] = field(default_factory=list)
    order: list[OrderTerm] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None

    @property
    def key(self) -> str:
        """The path segment that names this node in filter keys."""
        return self.embed.key if self.embed else ""

    @property
    def inner(self) -> bool:
        """Parents without a matching child disappear."""
        return bool(self.embed and self.embed.join == "inner")


class Builder:
    """Collects bound parameters and hands out aliases while SQL is written."""

    def __init__(self, cache: SchemaCache, max_rows: int | None) -> None:
        self.cache = cache
        self.max_rows = max_rows
        self.params: dict[str, object] = {}
        self._aliases = 0

    def bind(self, value: object, cast: str = "") -> str:
        """A placeholder for `value`."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s{cast}"

    def alias(self, name: str) -> str:
        """A fresh, quoted alias derived from a relation name."""
        self._aliases += 1
        return quote(f"{name}_{self._aliases}")

    # -- the request tree ------------------------------------------------------------------------------------

    def tree(self, rel: Relation, items: list[Field | Embed], alias: str | None = None) -> Node:
        """Resolve every embed in `items` against the schema cache."""
        node = Node(rel, alias or quote(rel.name), items)
        for item in items:
            if isinstance(item, Embed):
                relationship = resolve(rel, item)
                child = self.tree(relationship.target, item.items, self.alias(relationship.target.name))
                child.relationship = relationship
                child.embed = item
                node.children.append(child)
        return node

    def find(self, node: Node, path: tuple[str, ...]) -> Node:
        """The node an embed path names; PGRST108 when it is not embedded."""
        for segment in path:
            match = next((c for c in node.children if c.key == segment or c.rel.name == segment), None)
            if match is None:
                raise ApiError(
                    400,
                    "PGRST108",
                    f"'{segment}' is not an embedded resource in this request",
                    hint="Verify that '" + segment + "' is included in the 'select' query parameter.",
                )
            node = match
        return node

    # -- expressions -----------------------------------------------------------------------------------------

    def column(self, node: Node, name: str) -> Column:
        """A column of the node's relation, or PG's own 42703."""
        col = node.rel.columns.get(name)
        if col is None:
            raise ApiError(400, "42703", f"column {node.rel.name}.{name} does not exist")
        return col

    def json_path(self, expr: str, col: Column, path: tuple[JsonStep, ...]) -> str:
        """`expr->'a'->>0` with keys and indexes bound."""
        if not path:
            return expr
        if col.type not in ("json", "jsonb"):
            expr = f"to_jsonb({expr})"
        for step in path:
            expr = f"{expr}{step.arrow}" + (
                self.bind(int(step.key), "::integer") if step.is_index else self.bind(step.key, "::text")
            )
        return expr

    def cast_type(self, name: str) -> str:
        """A type named in a `::cast`, looked up in the cache (never written as given)."""
        qualified = self.cache.types.get(name.strip().lower()) or self.cache.types.get(name.strip())
        if qualified is None:
            raise ApiError(400, "42704", f'type "{name}" does not exist')
        return qualified

    def select_list(self, node: Node) -> list[tuple[str, str]]:
        """(expression, output key) per column and embed, plain columns first as PostgREST orders them."""
        columns: list[tuple[str, str]] = []
        embeds: list[tuple[str, str]] = []
        for item in node.items:
            if isinstance(item, Field):
                if item.aggregate:
                    raise ApiError(400, "PGRST123", "Use of aggregate functions is not allowed")
                if item.name == "*":
                    columns.extend((f"{node.alias}.{quote(c)}", c) for c in node.rel.columns)
                    continue
                col = self.column(node, item.name)
                expr = self.json_path(f"{node.alias}.{quote(col.name)}", col, item.path)
                if item.cast:
                    expr = f"cast({expr} as {self.cast_type(item.cast)})"
                columns.append((expr, item.key))
        for child in node.children:
            embeds.extend(self.embed_columns(node, child))
        return columns + embeds

    def embed_columns(self, parent: Node, child: Node) -> list[tuple[str, str]]:
        """The output of one embed: an object, an array, or spread columns."""
        assert child.embed is not None
        assert child.relationship is not None
        if not child.embed.items:
            return []
        source, where = self.child_source(parent, child)
        to_one = child.relationship.to_one
        if child.embed.spread:
            out = []
            for expr, key in self.select_list(child):
                if to_one:
                    out.append((f"(select {expr} from {source} where {where} limit 1)", key))
                else:
                    out.append(
                        (f"coalesce((select json_agg({expr}) from {source} where {where}), '[]')", key)
                    )
            return out
        inner = ", ".join(f"{expr} as {quote(key)}" for expr, key in self.select_list(child))
        sub = f"select {inner} from {source} where {where}"
        if to_one:
            return [(f"(select row_to_json(_e) from ({sub} limit 1) as _e)", child.embed.key)]
        sub += self.order_by(child) + self.limit_offset(child.limit, child.offset)
        return [(f"coalesce((select json_agg(_e) from ({sub}) as _e), '[]')", child.embed.key)]

    def child_source(self, parent: Node, child: Node) -> tuple[str, str]:
        """FROM and WHERE of a child: the join to its parent, its filters and its own inner embeds."""
        rel = child.relationship
        assert rel is not None
        conds = []
        if rel.kind == "m2m":
            assert rel.junction is not None
            j = self.alias(rel.junction.name)
            on = [
                f"{j}.{quote(a)} = {child.alias}.{quote(b)}"
                for a, b in zip(rel.junction_target, rel.target_columns, strict=True)
            ]
            on += [
                f"{j}.{quote(a)} = {parent.alias}.{quote(b)}"
                for a, b in zip(rel.junction_origin, rel.origin_columns, strict=True)
            ]
            conds.append(f"exists (select 1 from {rel.junction.qualified} as {j} where {' and '.join(on)})")
        else:
            conds += [
                f"{child.alias}.{quote(t)} = {parent.alias}.{quote(o)}"
                for o, t in zip(rel.origin_columns, rel.target_columns, strict=True)
            ]
        conds += self.conditions(child)
        return f"{child.rel.qualified} as {child.alias}", " and ".join(conds)

    def conditions(self, node: Node) -> list[str]:
        """The node's own filters plus an EXISTS for each inner child."""
        conds = [self.condition(node, f) for f in node.filters]
        for child in node.children:
            if child.inner:
                source, where = self.child_source(node, child)
                conds.append(f"exists (select 1 from {source} where {where})")
        return conds

    def condition(self, node: Node, item: Filter | Logic) -> str:
        """One filter or logic tree as SQL."""
        if isinstance(item, Logic):
            parts = [self.condition(node, f) for f in item.items]
            expr = "(" + f" {item.op} ".join(parts) + ")"
            return f"not {expr}" if item.negate else expr
        child = next((c for c in node.children if c.key == item.column), None)
        if (
            child is not None
            and item.op == "is"
            and item.value in ("null", "not_null")
            and not item.json_path
        ):
            source, where = self.child_source(node, child)
            exists = f"exists (select 1 from {source} where {where})"
            positive = item.value == "not_null"
            return exists if positive != item.negate else f"not {exists}"
        col = self.column(node, item.column)
        lhs = self.json_path(f"{node.alias}.{quote(col.name)}", col, item.json_path)
        expr = self.operator(lhs, col, item)
        return f"not ({expr})" if item.negate else expr

    def operator(self, lhs: str, col: Column, f: Filter) -> str:
        """lhs <op> value."""
        value = f.value
        if f.op == "in":
            assert isinstance(value, list)
            if not value:
                return "false"
            return f"{lhs} = any({self.bind(array_literal(value))})"
        if f.op == "is":
            return f"{lhs} {_IS[str(value)]}"
        assert isinstance(value, str)
        if f.op in _FTS:
            vector = (
                lhs
                if col.type == "tsvector" and not f.json_path
                else (
                    f"to_tsvector({self.bind(f.modifier, '::regconfig')}, {lhs})"
                    if f.modifier
                    else f"to_tsvector({lhs})"
                )
            )
            query = (
                f"{_FTS[f.op]}({self.bind(f.modifier, '::regconfig')}, {self.bind(value)})"
                if f.modifier
                else f"{_FTS[f.op]}({self.bind(value)})"
            )
            return f"{vector} @@ {query}"
        op = _COMPARE[f.op]
        if f.modifier in ("any", "all"):
            if f.op in ("like", "ilike"):
                value = value.replace("*", "%")
            return f"{lhs} {op} {f.modifier}({self.bind(value)})"
        return f"{lhs} {op} {self.bind(value)}"

    def order_by(self, node: Node) -> str:
        """ORDER BY for the node's order= terms."""
        if not node.order:
            return ""
        parts = []
        for term in node.order:
            if term.relation is not None:
                child = next((c for c in node.children if c.key == term.relation), None)
                if child is None:
                    raise ApiError(
                        400,
                        "PGRST108",
                        f"'{term.relation}' is not an embedded resource in this request",
                        hint=f"Verify that '{term.relation}' is included in the 'select' query parameter.",
                    )
                if child.relationship is None or not child.relationship.to_one:
                    raise ApiError(400, "PGRST118", f"A related order on '{term.relation}' is not possible")
                col = self.column(child, term.column)
                source, where = self.child_source(node, child)
                value = self.json_path(child.alias + "." + quote(col.name), col, term.json_path)
                expr = f"(select {value} from {source} where {where} limit 1)"
            else:
                col = self.column(node, term.column)
                expr = self.json_path(f"{node.alias}.{quote(col.name)}", col, term.json_path)
            if term.direction:
                expr += f" {term.direction}"
            if term.nulls:
                expr += f" nulls {term.nulls}"
            parts.append(expr)
        return " order by " + ", ".join(parts)

    def limit_offset(self, limit: int | None, offset: int | None) -> str:
        """LIMIT/OFFSET, with max-rows as the ceiling."""
        if self.max_rows is not None:
            limit = self.max_rows if limit is None else min(limit, self.max_rows)
        sql = ""
        if limit is not None:
            sql += f" limit {self.bind(limit)}"
        if offset:
            sql += f" offset {self.bind(offset)}"
        return sql


def array_literal(items: Iterable[str | None]) -> str:
    """A Postgres array literal (`{"a","b\\"c",NULL}`): each value double-quoted and escaped, None as NULL."""
    return (
        "{"
        + ",".join(
            "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items
        )
        + "}"
    )
