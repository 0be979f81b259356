"""Reads: the request tree of a GET (or of what a write or a function returns), the Range header, and the read
statement with its count (docs/rest.md, "A request, end to end")."""

from __future__ import annotations

import re

from busymate.gateway.rest.build import Builder, Node
from busymate.gateway.rest.errors import ApiError
from busymate.gateway.rest.plan import Plan, body_expr, csv_header, result_row, select_columns
from busymate.gateway.rest.request import BIGINT_MAX, OBJECT, Call, Prefer, Query, range_bound
from busymate.gateway.rest.schema import Relation

_RANGE = re.compile(r"\s*(?:items=)?(\d+)-(\d*)\s*")


def tree(builder: Builder, rel: Relation, query: Query, alias: str | None = None) -> Node:
    """The request tree of `rel`, with the query's filters, orders, limits and offsets hung on its nodes."""
    node = builder.tree(rel, query.select, alias)
    for f in query.filters:
        builder.find(node, f.path).filters.append(f)
    for path, terms in query.order.items():
        builder.find(node, path).order = terms
    for path, limit in query.limits.items():
        builder.find(node, path).limit = limit
    for path, offset in query.offsets.items():
        builder.find(node, path).offset = offset
    return node


def read(
    b: Builder,
    node: Node,
    prefer: Prefer,
    media: str,
    head: bool,
    source: str | None = None,
    first_only: bool = False,
) -> Plan:
    """The statement of a read: the page, its exact count when asked for, or the EXPLAIN for a planned one."""
    listing = b.select_list(node)
    cols = select_columns(listing)
    where = b.conditions(node)
    where_sql = (" where " + " and ".join(where)) if where else ""
    from_sql = source or f"{node.rel.qualified} as {node.alias}"
    tail = b.order_by(node) + b.limit_offset(node.limit, node.offset)
    page = f"select {cols} from {from_sql}{where_sql}{tail}"
    count = prefer.get("count")
    honoured = ["count"] if count else []
    count_sql = None
    count_expr = "null::bigint"
    if count == "exact":
        count_expr = f"(select count(*) from (select 1 from {from_sql}{where_sql}) as _c)"
    elif count in ("planned", "estimated"):
        count_sql = (f"select 1 from {from_sql}{where_sql}", dict(b.params))
    sql = result_row(
        total=count_expr,
        page_total="count(_t)",
        body="null::text" if head else body_expr(media, first_only),
        inserted="null::bigint",
        source=f" from ({page}) as _t",
    )
    return Plan(
        sql,
        dict(b.params),
        True,
        media,
        "read",
        count_sql,
        csv_header(listing),
        media.startswith(OBJECT),
        honoured=honoured,
        offset=node.offset or 0,
    )


def apply_range(call: Call, node: Node) -> None:
    """A GET's `Range: items=lo-hi` narrows the top node's offset and limit; 416 PGRST103 when reversed."""
    header = call.headers.get("range")
    if not header or call.method != "GET":
        return
    m = _RANGE.fullmatch(header)
    if not m:
        return
    lo = range_bound(m.group(1), "The lower boundary of the Range header")
    hi = range_bound(m.group(2), "The upper boundary of the Range header") if m.group(2) else None
    if hi is not None and hi < lo:
        raise ApiError(
            416,
            "PGRST103",
            "Requested range not satisfiable",
            details="The lower boundary must be lower than or equal to the upper boundary in the Range "
            "header.",
        )
    offset = max(node.offset or 0, lo)
    node.offset = offset
    if hi is not None:
        size = min(hi - lo + 1, BIGINT_MAX)
        node.limit = size if node.limit is None else min(node.limit, size)
