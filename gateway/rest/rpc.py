"""/rest/v1/rpc/name: choosing the function among its overloads, binding the arguments (query string or JSON
body) to its parameters' types, and the statement that calls it (docs/rest.md, "A request, end to end")."""

from __future__ import annotations

import orjson

from busymate.gateway.rest.build import Builder, array_literal
from busymate.gateway.rest.errors import ApiError
from busymate.gateway.rest.plan import Plan, result_row
from busymate.gateway.rest.read import read, tree
from busymate.gateway.rest.request import (
    ARRAY,
    CSV,
    JSON,
    OBJECT,
    Call,
    check_strict,
    parse_body,
    parse_query,
    pick_media,
)
from busymate.gateway.rest.respond import Response
from busymate.gateway.rest.schema import Function, Relation, SchemaCache, quote

MAX_ARRAY_DEPTH = 32


def rpc(cache: SchemaCache, max_rows: int | None, call: Call, schema: str, name: str) -> Plan | Response:
    """/rpc/name: the overload the arguments fit, called with them bound, its result shaped like a read's."""
    candidates = cache.functions.get((schema, name), [])
    get = call.method in ("GET", "HEAD")
    query = parse_query(call.query, rpc_get=get)
    prefer = call.preferences
    check_strict(prefer)
    body: object = None
    raw_json = None
    if not get and call.method != "OPTIONS":
        body = parse_body(call.headers.get("content-type"), call.body) if call.body.strip() else {}
        raw_json = call.body if call.body.strip() else b"{}"
    if get:
        keys = [k for k, _ in query.rpc_args]
    elif isinstance(body, dict):
        keys = list(query.columns or body.keys())
    else:
        keys = []
    fn = _choose(candidates, keys, body, schema, name)
    if not get and call.method != "OPTIONS" and not isinstance(body, dict) and not fn.single_unnamed_json:
        raise ApiError(
            400,
            "PGRST102",
            "The request body must be a JSON object of the function's arguments",
            details=f"{fn.schema}.{fn.name} takes named arguments, not a single JSON value",
        )
    if call.method == "OPTIONS":
        allow = "OPTIONS,POST" if fn.volatility == "v" else "OPTIONS,GET,HEAD,POST"
        return Response(200, {"allow": allow})
    b = Builder(cache, max_rows)
    if fn.single_unnamed_json and not (
        get or (isinstance(body, dict) and set(body) <= {p.name for p in fn.params})
    ):
        args = b.bind((raw_json or b"null").decode(), f"::{fn.params[0].type}")
    elif get:
        by_name = {p.name: p for p in fn.params}
        args = ", ".join(
            f"{quote(k)} := {b.bind(v, '::' + _type_sql(cache, by_name[k].type))}" for k, v in query.rpc_args
        )
    else:
        assert isinstance(body, dict)
        by_name = {p.name: p for p in fn.params}
        given = [k for k in keys if k in by_name]
        args = ", ".join(
            f"{quote(k)} := "
            + b.bind(_argument(body.get(k), by_name[k].type), "::" + _type_sql(cache, by_name[k].type))
            for k in given
        )
    call_sql = f"{fn.qualified}({args})"
    read_only = get or fn.volatility != "v"
    media = pick_media(call.headers.get("accept"), (JSON, OBJECT, ARRAY, CSV))
    head = call.method == "HEAD"
    if fn.return_kind == "void":
        sql = result_row(
            total="null::bigint",
            page_total="1",
            body="null::text",
            inserted="null::bigint",
            source=f" from (select {call_sql}) _v",
        )
        return Plan(sql, dict(b.params), read_only, media, "rpc", rpc_shape="void")
    if fn.return_kind == "composite" and fn.result_columns:
        rel = fn.result_relation or Relation(schema, name, "f", {c.name: c for c in fn.result_columns})
        if fn.result_relation is None:
            rel.relationships = []
        node = tree(b, rel, query, quote(name))
        if not fn.returns_set:
            node.limit = None
        plan = read(
            b,
            node,
            prefer,
            media,
            head,
            source=f"{call_sql} as {quote(name)}",
            first_only=not fn.returns_set,  # one composite value: an object, whatever the Accept
        )
        plan.read_only = read_only
        plan.kind = "rpc"
        plan.rpc_shape = "rows" if fn.returns_set else "object"
        return plan
    if fn.returns_set:
        body_sql = "coalesce(json_agg(_r.v), '[]')::text"
        src = f"{call_sql} as _r (v)"
    else:
        body_sql = "to_json(_r.v)::text"
        src = f"(select {call_sql} as v) as _r"
    sql = result_row(
        total="null::bigint",
        page_total="count(*)" if fn.returns_set else "1",
        body="null::text" if head else body_sql,
        inserted="null::bigint",
        source=f" from {src}",
    )
    return Plan(sql, dict(b.params), read_only, media, "rpc", rpc_shape="scalar")


def _choose(candidates: list[Function], keys: list[str], body: object, schema: str, name: str) -> Function:
    fits = []
    for fn in candidates:
        names = {p.name for p in fn.params}
        required = {p.name for p in fn.params if not p.has_default}
        if set(keys) <= names and required <= set(keys):
            fits.append(fn)
    if not fits:
        fits = [fn for fn in candidates if fn.single_unnamed_json]
    if not fits:
        params = ", ".join(sorted(keys))
        message = (
            f"Could not find the function {schema}.{name}({params}) in the schema cache"
            if keys
            else f"Could not find the function {schema}.{name} without parameters in the schema cache"
        )
        raise ApiError(
            404,
            "PGRST202",
            message,
            details=(
                f"Searched for the function {schema}.{name} with parameters {params} or with a single "
                "unnamed json/jsonb parameter, but no matches were found in the schema cache."
                if keys
                else f"Searched for the function {schema}.{name} without parameters, but no matches were "
                "found in the schema cache."
            ),
            hint=None,
        )
    if len(fits) > 1:
        exact = [fn for fn in fits if {p.name for p in fn.params} == set(keys)]
        if len(exact) == 1:
            return exact[0]
        raise ApiError(
            300,
            "PGRST203",
            "Could not choose the best candidate function between: "
            + ", ".join(_signature(fn) for fn in fits),
            hint="Try renaming the parameters or the function itself in the database so function overloading "
            "can be resolved",
        )
    return fits[0]


def _type_sql(cache: SchemaCache, type_name: str) -> str:
    return (
        cache.types.get(type_name)
        or (
            cache.types.get(type_name.removesuffix("[]"))
            and (cache.types[type_name.removesuffix("[]")] + "[]")
        )
        or "text"
    )


def _signature(fn: Function) -> str:
    return f"{fn.schema}.{fn.name}(" + ", ".join(f"{p.name} => {p.type}" for p in fn.params) + ")"


def _argument(value: object, type_name: str) -> str | None:
    """A JSON body value as the text Postgres casts to the parameter's type."""
    if type_name in ("json", "jsonb"):
        return orjson.dumps(value).decode()
    return _text(value)


def _text(value: object, depth: int = 0) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if depth == MAX_ARRAY_DEPTH:  # Postgres arrays stop at 6 dimensions; this stops the recursion
            raise ApiError(400, "PGRST102", "Empty or invalid json", details="An array nested too deeply")
        return array_literal(None if v is None else str(_text(v, depth + 1)) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)
