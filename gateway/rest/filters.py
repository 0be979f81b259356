"""Parse PostgREST's filters: `col=[not.]op[(mod)].value` and the or=/and= trees
(https://docs.postgrest.org/en/v14/references/api/tables_views.html#operators).

Like parse.py, nothing here knows the schema; a filter that does not parse raises PGRST100 with its position.
"""

from __future__ import annotations

import re

from busymate.gateway.rest.errors import parse_error
from busymate.gateway.rest.parse import (
    FTS,
    IS_VALUES,
    OPERATORS,
    QUANTIFIABLE,
    Filter,
    JsonStep,
    Logic,
    Reader,
)


def split_key(key: str) -> tuple[tuple[str, ...], str, tuple[JsonStep, ...]]:
    """A filter key into (embed path, column, JSON path): `tags.name`, `data->>a`, `actors.roles.id`."""
    arrow = key.find("->")
    head, tail = (key, "") if arrow < 0 else (key[:arrow], key[arrow:])
    parts = head.split(".")
    column = parts[-1]
    if column == "":
        raise parse_error("filter", key, len(head), 'unexpected "." expecting a column name')
    path: tuple[JsonStep, ...] = ()
    if tail:
        reader = Reader("filter", key)
        reader.pos = arrow
        path = reader.json_path()
        if not reader.at_end():
            raise reader.fail("end of the column name")
    column = column[1:-1] if len(column) > 1 and column.startswith('"') and column.endswith('"') else column
    return tuple(parts[:-1]), column, path


def parse_filter(path: tuple[str, ...], column: str, json_path: tuple[JsonStep, ...], value: str) -> Filter:
    """The value side of `col=[not.]op[(mod)].value`."""
    reader = Reader("filter", value)
    negate, op, modifier = _operator(reader)
    rest = value[reader.pos :]
    return Filter(path, column, json_path, negate, op, modifier, _operand(reader, op, rest))


def _operator(r: Reader) -> tuple[bool, str, str | None]:
    negate = r.take("not.")
    start = r.pos
    while r.pos < len(r.text) and r.text[r.pos].isalpha():
        r.pos += 1
    op = r.text[start : r.pos]
    if op not in OPERATORS:
        r.pos = start
        raise r.fail('"not" or operator (eq, gt, ...)' if not negate else "operator (eq, gt, ...)")
    modifier = None
    if r.take("("):
        mstart = r.pos
        while r.pos < len(r.text) and r.text[r.pos] not in ")":
            r.pos += 1
        modifier = r.text[mstart : r.pos]
        r.expect(")")
        if op in QUANTIFIABLE:
            if modifier not in ("any", "all"):
                r.pos = mstart
                raise r.fail('"any" or "all"')
        elif op in FTS:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", modifier):
                r.pos = mstart
                raise r.fail("a text search configuration name")
        else:
            r.pos = mstart - 1
            raise r.fail('"."')
    r.expect(".")
    return negate, op, modifier


def _operand(r: Reader, op: str, rest: str) -> str | list[str]:
    if op == "in":
        return _in_list(r)
    if op == "is":
        if rest.lower() not in IS_VALUES:
            raise r.fail("null, not_null, true, false or unknown")
        r.pos = len(r.text)
        return rest.lower()
    r.pos = len(r.text)
    if op in ("like", "ilike"):
        return rest.replace("*", "%")
    return rest


def _in_list(r: Reader) -> list[str]:
    r.expect("(")
    values: list[str] = []
    if r.take(")"):
        if not r.at_end():
            raise r.fail("end of input")
        return values
    while True:
        if r.peek('"'):
            values.append(r.quoted())
        else:
            start = r.pos
            while r.pos < len(r.text) and r.text[r.pos] not in ",)":
                r.pos += 1
            values.append(r.text[start : r.pos])
        if r.take(")"):
            break
        if not r.take(","):
            raise r.fail('"," or ")"')
    if not r.at_end():
        raise r.fail("end of input")
    return values


def parse_logic(path: tuple[str, ...], op: str, negate: bool, value: str) -> Logic:
    """The value of `or=(...)` / `and=(...)`, with nested trees."""
    reader = Reader("logic tree", value)
    logic = _logic_body(reader, path, op, negate)
    if not reader.at_end():
        raise reader.fail("end of input")
    return logic


def _logic_body(r: Reader, path: tuple[str, ...], op: str, negate: bool) -> Logic:
    r.expect("(")
    r.nest()
    items: list[Filter | Logic] = []
    while True:
        r.skip_spaces()
        nested_negate = r.take("not.")
        if r.peek("or(") or r.peek("and("):
            kind = "or" if r.take("or") else ("and" if r.take("and") else "")
            items.append(_logic_body(r, path, kind, nested_negate))
        else:
            if nested_negate:
                r.pos -= 4
            items.append(_logic_leaf(r, path))
        if r.take(")"):
            r.depth -= 1
            return Logic(path, op, negate, items)
        if not r.take(","):
            raise r.fail('"," or ")"')


def _logic_leaf(r: Reader, path: tuple[str, ...]) -> Filter:
    start = r.pos
    name_end = r.pos
    while name_end < len(r.text) and r.text[name_end] not in ".,()":
        if r.text.startswith("->", name_end):
            name_end += 2
            continue
        name_end += 1
    key = r.text[start:name_end]
    # A leaf may carry an embed path too: `a.b.col.eq.1` — the column is the last segment before an operator.
    segments = [key]
    pos = name_end
    while r.text.startswith(".", pos):
        nxt = pos + 1
        end = nxt
        while end < len(r.text) and r.text[end] not in ".,()":
            end += 1
        word = r.text[nxt:end]
        if word in OPERATORS or word == "not":
            break
        segments.append(word)
        pos = end
    if not key:
        raise r.fail("field name")
    r.pos = pos
    r.expect(".")
    negate, op, modifier = _operator(r)
    if op == "in":
        vstart = r.pos
        depth = 0
        while r.pos < len(r.text):
            ch = r.text[r.pos]
            if ch == '"':
                r.quoted()
                continue
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    r.pos += 1
                    break
            r.pos += 1
        sub = Reader("logic tree", r.text[vstart : r.pos])
        value: str | list[str] = _in_list(sub)
    elif r.peek('"'):
        value = r.quoted()
    elif r.peek("{"):
        vstart = r.pos
        end = r.text.find("}", r.pos)
        if end < 0:
            raise r.fail('"}"')
        r.pos = end + 1
        value = r.text[vstart : r.pos]
    else:
        vstart = r.pos
        while r.pos < len(r.text) and r.text[r.pos] not in ",)":
            r.pos += 1
        value = r.text[vstart : r.pos]
    if op == "is":
        if str(value).lower() not in IS_VALUES:
            raise r.fail("null, not_null, true, false or unknown")
        value = str(value).lower()
    elif op in ("like", "ilike") and isinstance(value, str):
        value = value.replace("*", "%")
    full = ".".join(segments)
    embed_path, column, json_path = split_key(full)
    return Filter(path + embed_path, column, json_path, negate, op, modifier, value)
