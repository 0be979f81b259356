"""Split a SQL script into statements the way psql would, without executing anything."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement and the 1-based line it starts on."""

    text: str
    line: int


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Index just past the closing quote of a literal that opens at sql[i]."""
    n = len(sql)
    i += 1
    while i < n:
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_block_comment(sql: str, i: int) -> int:
    """Index just past a (possibly nested) /* */ comment that opens at sql[i]."""
    depth, n = 0, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _is_blank(text: str) -> bool:
    """True when a chunk holds only white space and comments."""
    stripped = re.sub(r"--[^\n]*", "", text)
    stripped = re.sub(r"/\*.*?\*/", "", stripped, flags=re.S)
    return not stripped.strip()


def split_statements(sql: str) -> list[Statement]:
    """Statements of `sql` in order, each without its terminating semicolon."""
    out: list[Statement] = []
    start, i, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif ch == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "'":
            escaped = (
                i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            )
            i = _skip_quoted(sql, i, "'", backslash=escaped)
        elif ch == '"':
            i = _skip_quoted(sql, i, '"', backslash=False)
        elif ch == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            match = _DOLLAR_TAG.match(sql, i)
            if match:
                close = sql.find(match.group(0), match.end())
                i = n if close < 0 else close + len(match.group(0))
            else:
                i += 1
        elif ch == ";":
            _emit(out, sql, start, i)
            i += 1
            start = i
        else:
            i += 1
    _emit(out, sql, start, n)
    return out


def _emit(out: list[Statement], sql: str, start: int, end: int) -> None:
    chunk = sql[start:end]
    if _is_blank(chunk):
        return
    lead = len(chunk) - len(chunk.lstrip())
    line = sql.count("\n", 0, start + lead) + 1
    out.append(Statement(text=chunk.strip(), line=line))
