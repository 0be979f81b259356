"""The plan of one /rest/v1 request: its SQL, and the one six-column row every statement returns
(docs/rest.md, "A request, end to end").

`result_row` writes that row's select list and `ResultRow` reads it back by name: every statement the read,
write and RPC modules build goes through the one and the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from busymate.gateway.rest.request import CSV, OBJECT
from busymate.gateway.rest.schema import Relation, quote

# What a function or trigger asked for with set_config('response.headers' / 'response.status', ...).
_OVERRIDES = (
    "nullif(current_setting('response.headers', true), ''), "
    "nullif(current_setting('response.status', true), '')"
)


class ResultRow(NamedTuple):
    """The one row of a request's statement, in the order `result_row` writes it."""

    total: int | None  # Prefer: count=exact, counted in the same statement; else null
    page_total: int | None  # the rows in the body (or affected)
    body: str | None  # the body's text (JSON or CSV); the Location pairs of a headers-only insert
    inserted: int | None  # merge-duplicates with return=representation: how many rows were new
    headers: str | None  # response.headers, as the statement left it
    status: str | None  # response.status, as the statement left it


def result_row(*, total: str, page_total: str, body: str, inserted: str, source: str = "") -> str:
    """`select` of the six columns of `ResultRow` (SQL expressions), then `source`: a FROM, or nothing."""
    return f"select {total}, {page_total}, {body}, {inserted}, {_OVERRIDES}{source}"


@dataclass
class Plan:
    """The SQL for a request and how to read its one row."""

    sql: str
    params: dict[str, object]
    read_only: bool
    media: str
    kind: str  # read | insert | update | delete | rpc
    count_sql: tuple[str, dict[str, object]] | None = None
    csv_header: str = ""
    singular: bool = False
    rpc_shape: str = ""  # void | scalar | rows
    honoured: list[str] = field(default_factory=list)
    offset: int = 0
    location_table: Relation | None = None


def select_columns(listing: list[tuple[str, str]]) -> str:
    """The select list of (expression, output key) pairs; a placeholder column when it is empty."""
    return ", ".join(f"{expr} as {quote(key)}" for expr, key in listing) or 'null as "_"'


def body_expr(media: str, first_only: bool = False) -> str:
    """The body column over the page `_t`: CSV lines, one object, or an array (its first element when
    `first_only`, for a function returning one composite value)."""
    base = media.split(";")[0]
    if base == CSV:
        # The whole row's record text, so repeated output names (select=id,id) are not ambiguous.
        record = "_t::text"
        return f"coalesce(string_agg(substring({record} from 2 for length({record}) - 2), E'\\n'), '')"
    stripped = "nulls=stripped" in media
    if base == OBJECT or (first_only and not stripped):
        expr = "(json_agg(_t) -> 0)"
        return f"json_strip_nulls({expr})::text" if stripped else f"{expr}::text"
    expr = "coalesce(json_agg(_t), '[]')"
    return f"json_strip_nulls({expr})::text" if stripped else f"{expr}::text"


def csv_header(listing: list[tuple[str, str]]) -> str:
    """The CSV header line: the output keys."""
    return ",".join(k for _e, k in listing)
