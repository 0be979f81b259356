"""Continuation cursors for list tools (docs/mcp.md, "Results and errors"): a keyset over PostgREST. A page
asks for one row more than it shows, to know whether more remain; the cursor is the last shown row's sort
value and key, so rows added between two calls neither repeat nor push others out of the next page (an offset
would shift under them). Shared by BusyBro's registry list tools and the MCP server's own.

A cursor is opaque to the caller (base64 of `[sort value, key]`), checked on the way back in: it must name a
value of the keyset's column type and a key of its key type, else ToolRefused. It carries no authority: the
caller's token decides the rows, a cursor only where the page starts."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from busymate.functions.busybro.core import ToolRefused
from busymate.functions.busybro.tools.common import is_uuid

CURSOR_SCHEMA = {
    "type": "string",
    "maxLength": 4000,
    "description": "Where the previous page ended (its next_cursor); omit for the first page.",
}
FIT_CHARS = 20_000  # a page's rows stay under this, so the answer (capped at 24,000) is never cut mid-row
_BAD = "that cursor is not one this tool gave; call again without it (or with the next_cursor it returned)"

Kind = Literal["timestamp", "text", "uuid"]


def encode(after: object, key: object) -> str:
    """An opaque cursor after the row whose sort value is `after` and key is `key`."""
    return base64.urlsafe_b64encode(orjson.dumps([after, key])).decode().rstrip("=")


def decode(cursor: str) -> tuple[object, object]:
    """The sort value and key a cursor names (as JSON values); ToolRefused for anything else."""
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise ToolRefused(_BAD) from exc
    if not isinstance(value, list) or len(value) != 2:
        raise ToolRefused(_BAD)
    return value[0], value[1]


def _literal(value: str) -> str:
    """A PostgREST filter value, double-quoted (commas, parentheses and colons inside stay values)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _valid(value: object, kind: Kind) -> bool:
    if not isinstance(value, str) or not value or len(value) > 1000:  # names: at most 200 characters
        return False
    if kind == "uuid":
        return is_uuid(value)
    if kind == "timestamp":
        try:
            return datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            return False
    return True


@dataclass(frozen=True)
class Keyset:
    """Pages ordered by `column` (newest first unless `descending` is False; nulls last when `nullable`),
    then by `key`, unique, in the same direction. `kind` and `key_kind` are the types a cursor must carry."""

    column: str
    key: str = "id"
    descending: bool = True
    nullable: bool = False
    kind: Kind = "timestamp"
    key_kind: Kind = "uuid"

    def order(self) -> str:
        """The PostgREST `order` of this keyset."""
        way = "desc" if self.descending else "asc"
        return f"{self.column}.{way}.nullslast,{self.key}.{way}"

    def after(self, cursor: object) -> tuple[str | None, str]:
        """The sort value (None: a null) and key a cursor names; ToolRefused for a bad one."""
        if not isinstance(cursor, str) or not cursor:
            raise ToolRefused("cursor must be the next_cursor text of the previous page")
        value, key = decode(cursor)
        if not _valid(key, self.key_kind) or not (
            _valid(value, self.kind) or (value is None and self.nullable)
        ):
            raise ToolRefused(_BAD)
        return (None if value is None else str(value)), str(key)

    def params(self, params: dict[str, str], cursor: object, limit: int) -> dict[str, str]:
        """PostgREST parameters for one page: `params` plus the order, `limit + 1`, and after `cursor`
        (a filter in `or`, which `params` must not use)."""
        out = {**params, "order": self.order(), "limit": str(limit + 1)}
        if cursor is not None:
            value, key = self.after(cursor)
            op = "lt" if self.descending else "gt"
            col, k = self.column, self.key
            if value is None:  # past the last non-null row: only nulls remain, by key
                out["or"] = f"(and({col}.is.null,{k}.{op}.{_literal(key)}))"
            else:
                v = _literal(value)
                tail = f",{col}.is.null" if self.nullable else ""
                out["or"] = f"({col}.{op}.{v},and({col}.eq.{v},{k}.{op}.{_literal(key)}){tail})"
        return out

    def cursor_of(self, row: dict[str, Any]) -> str:
        """The cursor of the page after `row`."""
        return encode(row[self.column], row[self.key])

    def page(self, rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """The rows to show and the cursor of the next page (None on the last page)."""
        shown = rows[:limit]
        more = len(rows) > limit and bool(shown)
        return shown, self.cursor_of(shown[-1]) if more else None

    def fit(
        self, rows: list[dict[str, Any]], limit: int, shown: Sequence[Any], budget: int = FIT_CHARS
    ) -> tuple[list[Any], str | None]:
        """`shown` (rows[:limit] as the tool renders them, in order) cut to the longest head whose JSON fits
        `budget` (at least one row), and the cursor after the last one kept (None when nothing remains)."""
        kept = len(shown)
        while kept > 1 and len(orjson.dumps(list(shown[:kept]), default=str)) > budget:
            kept -= 1
        more = kept < len(rows)
        return list(shown[:kept]), self.cursor_of(rows[kept - 1]) if more and kept else None
