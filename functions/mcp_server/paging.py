"""Continuation cursors for list tools (docs/mcp.md, "Results and errors"): a keyset over PostgREST, newest
first. A page asks for one row more than it shows, to know whether more remain; the cursor is the last shown
row's sort value and key, so rows captured between two calls neither repeat nor go missing (an offset would
shift under them). For the MCP-only tools in `EXTRA_TOOLS`; the sort column must not be null."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from busymate.functions.busybro.core import ToolRefused

CURSOR_SCHEMA = {
    "type": "string",
    "maxLength": 1000,
    "description": "Where the previous page ended (its next_cursor); omit for the first page.",
}


def encode(after: object, key: object) -> str:
    """An opaque cursor after the row whose sort value is `after` and key is `key`."""
    return base64.urlsafe_b64encode(orjson.dumps([after, key])).decode().rstrip("=")


def decode(cursor: str) -> tuple[str, str]:
    """The sort value and key a cursor names; ToolRefused for one this server did not give."""
    try:
        after, key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise ToolRefused("that cursor is not one this tool gave; call again without it") from exc
    return str(after), str(key)


def _literal(value: str) -> str:
    """A PostgREST filter value, double-quoted (commas, parentheses and colons inside stay values)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Keyset:
    """Pages ordered by `column` descending, then `key` (unique) descending."""

    column: str
    key: str = "id"

    def params(self, params: dict[str, str], cursor: object, limit: int) -> dict[str, str]:
        """PostgREST parameters for one page: `params` plus the order, `limit + 1`, and after `cursor`."""
        out = {**params, "order": f"{self.column}.desc,{self.key}.desc", "limit": str(limit + 1)}
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor:
                raise ToolRefused("cursor must be the next_cursor text of the previous page")
            after, key = (_literal(part) for part in decode(cursor))
            out["or"] = f"({self.column}.lt.{after},and({self.column}.eq.{after},{self.key}.lt.{key}))"
        return out

    def page(self, rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """The rows to show and the cursor of the next page (None on the last page)."""
        shown = rows[:limit]
        more = len(rows) > limit and bool(shown)
        return shown, encode(shown[-1][self.column], shown[-1][self.key]) if more else None
