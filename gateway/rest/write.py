"""Writes: the INSERT (upsert), UPDATE and DELETE of a table request, each wrapped so its one row carries the
body, the counts and the Location the Prefer header asked for (docs/rest.md, "A request, end to end")."""

from __future__ import annotations

import orjson

from busymate.gateway.rest.build import Builder
from busymate.gateway.rest.errors import ApiError
from busymate.gateway.rest.plan import Plan, body_expr, csv_header, result_row, select_columns
from busymate.gateway.rest.read import tree
from busymate.gateway.rest.request import OBJECT, Prefer, Query
from busymate.gateway.rest.schema import Relation, quote, text_literal


def _payload(rel: Relation, query: Query, body: object) -> tuple[list[str], list[dict[str, object]]]:
    """The target columns and the rows of a write body, checked against the schema cache."""
    rows = body if isinstance(body, list) else [body] if isinstance(body, dict) else None
    if rows is None or not all(isinstance(r, dict) for r in rows):
        raise ApiError(400, "PGRST102", "Empty or invalid json")
    if query.columns is not None:
        columns = query.columns
    elif rows:
        columns = list(rows[0])
        first = set(columns)
        if any(set(r) != first for r in rows[1:]):
            raise ApiError(400, "PGRST102", "All object keys must match")
    else:
        columns = []
    for name in columns:
        if name not in rel.columns:
            raise ApiError(
                400, "PGRST204", f"Could not find the '{name}' column of '{rel.name}' in the schema cache"
            )
    return columns, rows


def insert(b: Builder, rel: Relation, query: Query, prefer: Prefer, media: str, body: object) -> Plan:
    """POST: insert the body's rows; with Prefer: resolution, an upsert on the primary key or on_conflict."""
    columns, rows = _payload(rel, query, body)
    payload = orjson.dumps(rows).decode()
    ret = prefer.get("return") or "minimal"
    honoured = ["return"] if prefer.get("return") else []
    target = ", ".join(quote(c) for c in columns)
    types = ", ".join(f"{quote(c)} {rel.columns[c].type}" for c in columns)
    missing_default = prefer.get("missing") == "default" and query.columns is not None
    if missing_default:
        honoured.append("missing")
    exprs = []
    for c in columns:
        if missing_default:
            default = rel.columns[c].default or "null"
            exprs.append(
                f"case when _j.v::jsonb ? {b.bind(c, '::text')} then _r.{quote(c)} else {default} end"
            )
        else:
            exprs.append(f"_r.{quote(c)}")
    alias = quote(rel.name)
    if columns:
        insert = (
            f"insert into {rel.qualified} as {alias} ({target}) select {', '.join(exprs)} "
            f"from json_array_elements({b.bind(payload, '::json')}) as _j (v) "
            f"cross join lateral json_to_record(_j.v) as _r ({types})"
        )
    elif rows:
        rows_param = b.bind(payload, "::json")
        insert = f"insert into {rel.qualified} as {alias} select from json_array_elements({rows_param})"
    else:
        insert = f"insert into {rel.qualified} as {alias} select where false"
    resolution = prefer.get("resolution")
    if resolution and (query.on_conflict or rel.primary_key):
        honoured.append("resolution")
        keys = query.on_conflict or list(rel.primary_key)
        for k in keys:
            if k not in rel.columns:
                raise ApiError(400, "42703", f"column {rel.name}.{k} does not exist")
        conflict = ", ".join(quote(k) for k in keys)
        if resolution == "ignore-duplicates" or not columns:
            insert += f" on conflict ({conflict}) do nothing"
        else:
            sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns) or ", ".join(
                f"{quote(k)} = excluded.{quote(k)}" for k in keys
            )
            insert += f" on conflict ({conflict}) do update set {sets}"
    return _mutation(
        b,
        rel,
        query,
        prefer,
        media,
        insert,
        ret,
        honoured,
        "insert",
        bool(resolution == "merge-duplicates"),
    )


def update(b: Builder, rel: Relation, query: Query, prefer: Prefer, media: str, body: object) -> Plan:
    """PATCH: set the body's columns on the rows the filters select."""
    if not isinstance(body, dict):
        if isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict):
            body = body[0]
        else:
            raise ApiError(400, "PGRST102", "Empty or invalid json")
    columns, _rows = _payload(rel, query, body)
    ret = prefer.get("return") or "minimal"
    honoured = ["return"] if prefer.get("return") else []
    alias = quote(rel.name)
    node = tree(b, rel, Query(select=[], filters=[f for f in query.filters if not f.path]))
    where = [b.condition(node, f) for f in node.filters]
    if not columns:
        where.append("false")
        first = quote(next(iter(rel.columns)))
        update = f"update {rel.qualified} as {alias} set {first} = {alias}.{first}"
    else:
        types = ", ".join(f"{quote(c)} {rel.columns[c].type}" for c in columns)
        sets = ", ".join(f"{quote(c)} = _r.{quote(c)}" for c in columns)
        data = b.bind(orjson.dumps(body).decode(), "::json")
        update = f"update {rel.qualified} as {alias} set {sets} from json_to_record({data}) as _r ({types})"
    if where:
        update += " where " + " and ".join(where)
    return _mutation(b, rel, query, prefer, media, update, ret, honoured, "update", False)


def delete(b: Builder, rel: Relation, query: Query, prefer: Prefer, media: str) -> Plan:
    """DELETE: the rows the filters select."""
    ret = prefer.get("return") or "minimal"
    honoured = ["return"] if prefer.get("return") else []
    alias = quote(rel.name)
    node = tree(b, rel, Query(select=[], filters=[f for f in query.filters if not f.path]))
    where = [b.condition(node, f) for f in node.filters]
    sql = f"delete from {rel.qualified} as {alias}" + (" where " + " and ".join(where) if where else "")
    return _mutation(b, rel, query, prefer, media, sql, ret, honoured, "delete", False)


def _mutation(
    b: Builder,
    rel: Relation,
    query: Query,
    prefer: Prefer,
    media: str,
    statement: str,
    ret: str,
    honoured: list[str],
    kind: str,
    merge: bool,
) -> Plan:
    """The statement around `statement`: its RETURNING, and the body or Location the client asked for."""
    if prefer.get("count"):
        honoured.append("count")
    if prefer.get("tx"):
        honoured.append("tx")
    if prefer.get("handling") == "strict" and prefer.get("max-affected"):
        honoured += ["handling", "max-affected"]
    if ret == "representation":
        node = tree(
            b,
            rel,
            Query(
                select=query.select,
                filters=[f for f in query.filters if f.path],
                order=query.order,
                limits={},
                offsets={},
            ),
        )
        node.filters = []
        listing = b.select_list(node)
        cols = select_columns(listing)
        returning = f"returning {quote(rel.name)}.*" + (", (xmax = 0) as pgrst_inserted" if merge else "")
        page = f"select {cols} from pgrst_source as {quote(rel.name)}{b.order_by(node)}"
        inserted = "(select count(*) from pgrst_source where pgrst_inserted)" if merge else "null::bigint"
        sql = f"with pgrst_source as ({statement} {returning}) " + result_row(
            total="null::bigint",
            page_total="count(_t)",
            body=body_expr(media),
            inserted=inserted,
            source=f" from ({page}) as _t",
        )
        header = csv_header(listing)
    else:
        pk = rel.primary_key if ret == "headers-only" and kind == "insert" else ()
        returning = "returning " + (", ".join(f"{quote(rel.name)}.{quote(c)}" for c in pk) if pk else "1")
        location = (
            (
                "(select array_agg("
                + " || '&' || ".join(
                    f"{text_literal(c + '=')} || coalesce('eq.' || {quote(c)}::text, 'is.null')" for c in pk
                )
                + ") from pgrst_source)"
            )
            if pk
            else "null"
        )
        sql = f"with pgrst_source as ({statement} {returning}) " + result_row(
            total="null::bigint",
            page_total="(select count(*) from pgrst_source)",
            body=f"{location}::text",
            inserted="null::bigint",
        )
        header = ""
    if ret == "headers-only":
        honoured = [h for h in honoured if h != "return"] + ["return"]
    return Plan(
        sql,
        dict(b.params),
        False,
        media,
        kind,
        None,
        header,
        media.startswith(OBJECT) and ret == "representation",
        honoured=honoured,
        location_table=rel if ret == "headers-only" else None,
    )
