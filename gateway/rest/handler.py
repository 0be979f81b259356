"""/rest/v1: one request, one transaction, one main statement whose row is the response (docs/rest.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from http.cookies import SimpleCookie

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from busymate.gateway.availability import RETRY_AFTER, Availability, connection_lost, first_line
from busymate.gateway.rest import openapi
from busymate.gateway.rest.build import Builder, Node, similar
from busymate.gateway.rest.errors import ApiError, status_for_sqlstate
from busymate.gateway.rest.request import (
    ARRAY,
    BIGINT_MAX,
    CSV,
    JSON,
    OBJECT,
    OPENAPI,
    Prefer,
    Query,
    parse_body,
    parse_prefer,
    parse_query,
    pick_media,
    range_bound,
)
from busymate.gateway.rest.schema import Function, Relation, SchemaCache, quote

ANON_ROLE = "anon"
MAX_ARRAY_DEPTH = 32
_OVERRIDES = (
    "nullif(current_setting('response.headers', true), ''), "
    "nullif(current_setting('response.status', true), '')"
)
_SETTINGS_SQL = (
    "select set_config('search_path', %s, true), set_config('role', %s, true), "
    "set_config('request.jwt.claims', %s, true), set_config('request.method', %s, true), "
    "set_config('request.path', %s, true), set_config('request.headers', %s, true), "
    "set_config('request.cookies', %s, true), "
    "(select count(set_config('request.jwt.claim.' || c.key, c.value, true)) "
    "from jsonb_each_text(%s::jsonb) as c), "
    "(select count(set_config(s.key, s.value, true)) from jsonb_each_text(%s::jsonb) as s)"
)


@dataclass
class Response:
    """What goes back on the wire."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Call:
    """One request as the handler sees it, after the gateway verified the token."""

    method: str
    path: str  # after /rest/v1, e.g. /todos or /rpc/fn
    query: str
    headers: dict[str, str]  # lower-cased names; repeated ones joined with ", "
    prefer: list[str]
    body: bytes
    claims: dict[str, object]
    role: str

    @cached_property
    def preferences(self) -> Prefer:
        """The Prefer headers, parsed once per request."""
        return parse_prefer(self.prefer)


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


class RestApi:
    """The PostgREST-compatible handler, over a pool of `authenticator` connections."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        cache: SchemaCache,
        *,
        max_rows: int | None = 1000,
        availability: Availability | None = None,
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.max_rows = max_rows
        self.availability = availability

    async def handle(self, call: Call) -> Response:
        """Answer one request; every failure becomes PostgREST's error shape."""
        try:
            return await self._handle(call)
        except ApiError as exc:
            return error_response(exc)
        except orjson.JSONEncodeError as exc:
            # orjson reads 1024 levels of nesting but writes 254: a body between the two cannot be passed on.
            return error_response(ApiError(400, "PGRST102", "Empty or invalid json", details=str(exc)))

    async def _handle(self, call: Call) -> Response:
        segments = call.path.strip("/").split("/") if call.path.strip("/") else []
        if call.path not in ("", "/") and call.path.endswith("/"):
            segments.append("")
        schema = self._schema(call)
        profile = {"content-profile": schema} if _profile_sent(call) else {}
        if not segments:
            if call.method not in ("GET", "HEAD", "OPTIONS"):
                raise ApiError(405, "PGRST117", f"Unsupported HTTP method: {call.method}")
            if call.method == "OPTIONS":
                return Response(200, {"allow": "OPTIONS,GET,HEAD"})
            media = pick_media(call.headers.get("accept"), (OPENAPI, JSON))
            body = openapi.document(self.cache, schema)
            return Response(
                200, {"content-type": f"{media}; charset=utf-8"}, b"" if call.method == "HEAD" else body
            )
        if segments[0] == "rpc" and len(segments) == 2 and segments[1]:
            fn_name = segments[1]
            if call.method not in ("GET", "HEAD", "POST", "OPTIONS"):
                raise ApiError(405, "PGRST101", f"Cannot use the {call.method} method on RPC")
            plan = self._rpc(call, schema, fn_name)
        elif len(segments) == 1 and segments[0]:
            rel = self._relation(schema, segments[0])
            if call.method == "OPTIONS":
                return Response(200, {"allow": "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"})
            plan = self._table(call, rel)
        else:
            raise ApiError(404, "PGRST125", "Invalid path specified in request URL")
        if isinstance(plan, Response):
            return plan
        response = await self._run(call, plan, schema)
        response.headers.update(profile)
        return response

    # -- routing helpers -------------------------------------------------------------------------------------

    def _schema(self, call: Call) -> str:
        header = "accept-profile" if call.method in ("GET", "HEAD", "OPTIONS") else "content-profile"
        schema = call.headers.get(header) or self.cache.schemas[0]
        if schema not in self.cache.schemas:
            raise ApiError(
                406,
                "PGRST106",
                f"Invalid schema: {schema}",
                hint=f"Only the following schemas are exposed: {', '.join(self.cache.schemas)}",
            )
        return schema

    def _relation(self, schema: str, name: str) -> Relation:
        rel = self.cache.relations.get((schema, name))
        if rel is None:
            near = [n for (s, n) in self.cache.relations if s == schema and similar(n, name, 2)]
            raise ApiError(
                404,
                "PGRST205",
                f"Could not find the table '{schema}.{name}' in the schema cache",
                hint=f"Perhaps you meant the table '{schema}.{near[0]}'" if near else None,
            )
        return rel

    # -- tables ----------------------------------------------------------------------------------------------

    def _table(self, call: Call, rel: Relation) -> Plan:
        method = call.method
        if method not in ("GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"):
            raise ApiError(405, "PGRST117", f"Unsupported HTTP method: {method}")
        prefer = call.preferences
        _strict(prefer)
        query = parse_query(call.query, rpc_get=False)
        builder = Builder(self.cache, self.max_rows)
        if method in ("GET", "HEAD"):
            media = pick_media(call.headers.get("accept"), (JSON, OBJECT, ARRAY, CSV))
            node = self._tree(builder, rel, query)
            _range(call, node)
            return self._read(builder, node, query, prefer, media, method == "HEAD")
        media = pick_media(call.headers.get("accept"), (JSON, OBJECT, ARRAY, CSV))
        if method == "DELETE":
            return self._delete(builder, rel, query, prefer, media)
        body = parse_body(call.headers.get("content-type"), call.body)
        if method == "PATCH":
            return self._update(builder, rel, query, prefer, media, body)
        if method == "PUT":
            raise ApiError(
                400,
                "PGRST127",
                "Feature not implemented",
                details="PUT is not supported; use POST with Prefer: resolution=merge-duplicates",
            )
        return self._insert(builder, rel, query, prefer, media, body)

    def _tree(self, builder: Builder, rel: Relation, query: Query, alias: str | None = None) -> Node:
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

    def _read(
        self,
        b: Builder,
        node: Node,
        query: Query,
        prefer: Prefer,
        media: str,
        head: bool,
        source: str | None = None,
    ) -> Plan:
        listing = b.select_list(node)
        cols = ", ".join(f"{expr} as {quote(key)}" for expr, key in listing) or 'null as "_"'
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
        sql = _envelope(page, count_expr, media, head, listing)
        params = dict(b.params)
        return Plan(
            sql,
            params,
            True,
            media,
            "read",
            count_sql,
            _csv_header(listing),
            media.startswith(OBJECT),
            honoured=honoured,
            offset=node.offset or 0,
        )

    def _payload(
        self, rel: Relation, query: Query, body: object
    ) -> tuple[list[str], list[dict[str, object]]]:
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

    def _insert(
        self, b: Builder, rel: Relation, query: Query, prefer: Prefer, media: str, body: object
    ) -> Plan:
        columns, rows = self._payload(rel, query, body)
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
        return self._mutation(
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

    def _update(
        self, b: Builder, rel: Relation, query: Query, prefer: Prefer, media: str, body: object
    ) -> Plan:
        if not isinstance(body, dict):
            if isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict):
                body = body[0]
            else:
                raise ApiError(400, "PGRST102", "Empty or invalid json")
        columns, _rows = self._payload(rel, query, body)
        ret = prefer.get("return") or "minimal"
        honoured = ["return"] if prefer.get("return") else []
        alias = quote(rel.name)
        node = self._tree(b, rel, Query(select=[], filters=[f for f in query.filters if not f.path]))
        where = [b.condition(node, f) for f in node.filters]
        if not columns:
            where.append("false")
            first = quote(next(iter(rel.columns)))
            update = f"update {rel.qualified} as {alias} set {first} = {alias}.{first}"
        else:
            types = ", ".join(f"{quote(c)} {rel.columns[c].type}" for c in columns)
            sets = ", ".join(f"{quote(c)} = _r.{quote(c)}" for c in columns)
            data = b.bind(orjson.dumps(body).decode(), "::json")
            update = (
                f"update {rel.qualified} as {alias} set {sets} from json_to_record({data}) as _r ({types})"
            )
        if where:
            update += " where " + " and ".join(where)
        return self._mutation(b, rel, query, prefer, media, update, ret, honoured, "update", False)

    def _delete(self, b: Builder, rel: Relation, query: Query, prefer: Prefer, media: str) -> Plan:
        ret = prefer.get("return") or "minimal"
        honoured = ["return"] if prefer.get("return") else []
        alias = quote(rel.name)
        node = self._tree(b, rel, Query(select=[], filters=[f for f in query.filters if not f.path]))
        where = [b.condition(node, f) for f in node.filters]
        sql = f"delete from {rel.qualified} as {alias}" + (" where " + " and ".join(where) if where else "")
        return self._mutation(b, rel, query, prefer, media, sql, ret, honoured, "delete", False)

    def _mutation(
        self,
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
        if prefer.get("count"):
            honoured.append("count")
        if prefer.get("tx"):
            honoured.append("tx")
        if prefer.get("handling") == "strict" and prefer.get("max-affected"):
            honoured += ["handling", "max-affected"]
        if ret == "representation":
            node = self._tree(
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
            cols = ", ".join(f"{expr} as {quote(key)}" for expr, key in listing) or 'null as "_"'
            returning = f"returning {quote(rel.name)}.*" + (", (xmax = 0) as pgrst_inserted" if merge else "")
            page = f"select {cols} from pgrst_source as {quote(rel.name)}{b.order_by(node)}"
            inserted = "(select count(*) from pgrst_source where pgrst_inserted)" if merge else "null::bigint"
            sql = (
                f"with pgrst_source as ({statement} {returning}) "
                f"select null::bigint, count(_t), {_body_expr(media, listing)}, {inserted}, "
                "nullif(current_setting('response.headers', true), ''), "
                f"nullif(current_setting('response.status', true), '') from ({page}) as _t"
            )
            csv_header = _csv_header(listing)
        else:
            pk = rel.primary_key if ret == "headers-only" and kind == "insert" else ()
            returning = "returning " + (", ".join(f"{quote(rel.name)}.{quote(c)}" for c in pk) if pk else "1")
            location = (
                (
                    "(select array_agg("
                    + " || '&' || ".join(
                        f"'{c}=' || coalesce('eq.' || {quote(c)}::text, 'is.null')" for c in pk
                    )
                    + ") from pgrst_source)"
                )
                if pk
                else "null"
            )
            sql = (
                f"with pgrst_source as ({statement} {returning}) "
                "select null::bigint, (select count(*) from pgrst_source), "
                f"{location}::text, null::bigint, nullif(current_setting('response.headers', true), ''), "
                "nullif(current_setting('response.status', true), '')"
            )
            csv_header = ""
        if ret == "headers-only":
            honoured = [h for h in honoured if h != "return"] + ["return"]
        return Plan(
            sql,
            dict(b.params),
            False,
            media,
            kind,
            None,
            csv_header,
            media.startswith(OBJECT) and ret == "representation",
            honoured=honoured,
            location_table=rel if ret == "headers-only" else None,
        )

    # -- rpc -------------------------------------------------------------------------------------------------

    def _rpc(self, call: Call, schema: str, name: str) -> Plan | Response:
        candidates = self.cache.functions.get((schema, name), [])
        get = call.method in ("GET", "HEAD")
        query = parse_query(call.query, rpc_get=get)
        prefer = call.preferences
        _strict(prefer)
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
        b = Builder(self.cache, self.max_rows)
        if fn.single_unnamed_json and not (
            get or (isinstance(body, dict) and set(body) <= {p.name for p in fn.params})
        ):
            args = b.bind((raw_json or b"null").decode(), f"::{fn.params[0].type}")
        elif get:
            by_name = {p.name: p for p in fn.params}
            args = ", ".join(
                f"{quote(k)} := {b.bind(v, '::' + _type_sql(self.cache, by_name[k].type))}"
                for k, v in query.rpc_args
            )
        else:
            assert isinstance(body, dict)
            by_name = {p.name: p for p in fn.params}
            given = [k for k in keys if k in by_name]
            args = ", ".join(
                f"{quote(k)} := "
                + b.bind(
                    _argument(body.get(k), by_name[k].type), "::" + _type_sql(self.cache, by_name[k].type)
                )
                for k in given
            )
        call_sql = f"{fn.qualified}({args})"
        read_only = get or fn.volatility != "v"
        media = pick_media(call.headers.get("accept"), (JSON, OBJECT, ARRAY, CSV))
        head = call.method == "HEAD"
        if fn.return_kind == "void":
            sql = (
                f"select null::bigint, 1, null::text, null::bigint, {_OVERRIDES} from (select {call_sql}) _v"
            )
            return Plan(sql, dict(b.params), read_only, media, "rpc", rpc_shape="void")
        if fn.return_kind == "composite" and fn.result_columns:
            rel = fn.result_relation or Relation(schema, name, "f", {c.name: c for c in fn.result_columns})
            if fn.result_relation is None:
                rel.relationships = []
            node = self._tree(b, rel, query, quote(name))
            if not fn.returns_set:
                node.limit = None
            plan = self._read(b, node, query, prefer, media, head, source=f"{call_sql} as {quote(name)}")
            plan.read_only = read_only
            plan.kind = "rpc"
            plan.rpc_shape = "rows" if fn.returns_set else "object"
            if not fn.returns_set and not media.startswith(OBJECT):
                plan.sql = plan.sql.replace(
                    "coalesce(json_agg(_t), '[]')::text", "(json_agg(_t) -> 0)::text", 1
                )
            return plan
        if fn.returns_set:
            body_sql = "coalesce(json_agg(_r.v), '[]')::text"
            src = f"{call_sql} as _r (v)"
        else:
            body_sql = "to_json(_r.v)::text"
            src = f"(select {call_sql} as v) as _r"
        sql = (
            f"select null::bigint, {'count(*)' if fn.returns_set else '1'}, "
            f"{'null::text' if head else body_sql}, "
            f"null::bigint, {_OVERRIDES} "
            f"from {src}"
        )
        return Plan(sql, dict(b.params), read_only, media, "rpc", rpc_shape="scalar")

    # -- execution -------------------------------------------------------------------------------------------

    async def _run(self, call: Call, plan: Plan, schema: str) -> Response:
        prefer = call.preferences
        claims = dict(call.claims)
        claims["role"] = call.role
        legacy = {
            k: v
            for k, v in claims.items()
            if isinstance(v, str | int | float)
            and not isinstance(v, bool)
            and re.fullmatch(r"[A-Za-z0-9_]+", k)
        }
        headers = {k: v for k, v in call.headers.items() if k != "cookie"}
        cookies = {k: m.value for k, m in SimpleCookie(call.headers.get("cookie", "")).items()}
        settings = [
            f'"{schema}", "public", "extensions"',
            call.role,
            orjson.dumps(claims).decode(),
            call.method,
            call.path,
            orjson.dumps(headers).decode(),
            orjson.dumps(cookies).decode(),
            orjson.dumps(legacy).decode(),
            orjson.dumps(self.cache.role_settings.get(call.role, {})).decode(),
        ]
        timezone = prefer.get("timezone")
        rollback = prefer.get("tx") == "rollback"
        anonymous = call.role == ANON_ROLE
        availability = self.availability
        if availability is not None and availability.down:
            raise ApiError(
                503,
                "PGRST000",
                "Database connection error. Retrying the connection.",
                details=availability.reason,
                headers={"retry-after": RETRY_AFTER},
            )
        try:
            async with self.pool.connection() as conn:
                try:
                    row, total = await self._execute(conn, plan, settings, timezone, rollback, prefer)
                except BaseException:
                    if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        await conn.execute("rollback")
                    raise
        except PoolTimeout as exc:
            if availability is not None:
                availability.suspect()
            raise ApiError(504, "PGRST003", "Timed out acquiring connection from connection pool.") from exc
        except psycopg.OperationalError as exc:
            if not connection_lost(exc):
                raise _db_error(exc, anonymous) from exc
            if availability is not None:
                availability.lost(exc)
            raise ApiError(
                503,
                "PGRST001",
                "Database client error. Retrying the connection.",
                details=first_line(exc),
                headers={"retry-after": RETRY_AFTER},
            ) from exc
        except pg_errors.Error as exc:
            raise _db_error(exc, anonymous) from exc
        return self._respond(call, plan, prefer, row, total)

    async def _execute(
        self,
        conn: psycopg.AsyncConnection[tuple[object, ...]],
        plan: Plan,
        settings: list[str],
        timezone: str | None,
        rollback: bool,
        prefer: Prefer,
    ) -> tuple[tuple[object, ...], int | None]:
        mode = "read only" if plan.read_only else "read write"
        await conn.execute(f"begin isolation level read committed {mode}")
        await conn.execute(_SETTINGS_SQL, settings)
        if self.cache.pre_request is not None:
            # db-pre-request: its own statement, as PostgREST runs it, so its name resolves as the request's
            # role.
            await conn.execute(f"select {self.cache.pre_request}()")
        if timezone:
            await conn.execute("select set_config('timezone', %s, true)", [timezone])
        cur = await conn.execute(plan.sql, plan.params)
        row = await cur.fetchone()
        assert row is not None
        total = None
        if plan.count_sql is not None:
            explain = await conn.execute("explain (format json) " + plan.count_sql[0], plan.count_sql[1])
            doc = (await explain.fetchone() or [[{}]])[0]
            total = int(doc[0]["Plan"]["Plan Rows"])  # type: ignore[index]
        page_total = int(str(row[1] or 0))
        failed = None
        if plan.singular and page_total != 1:
            failed = ApiError(
                406,
                "PGRST116",
                "Cannot coerce the result to a single JSON object",
                details=f"The result contains {page_total} rows",
            )
        elif (
            prefer.get("handling") == "strict"
            and prefer.get("max-affected")
            and plan.kind in ("update", "delete", "rpc")
        ) and page_total > int(prefer.get("max-affected") or 0):
            failed = ApiError(
                400,
                "PGRST124",
                "Query result exceeds max-affected preference constraint",
                details=f"The query affects {page_total} rows",
            )
        if failed is not None:
            await conn.execute("rollback")
            raise failed
        await conn.execute("rollback" if rollback or plan.read_only else "commit")
        return row, total

    def _respond(
        self, call: Call, plan: Plan, prefer: Prefer, row: tuple[object, ...], total: int | None
    ) -> Response:
        counted = row[0] if row[0] is not None else total
        n = int(str(row[1] or 0))
        body_text = row[2]
        headers: dict[str, str] = {}
        count_total = None if counted is None else int(str(counted))
        if plan.kind in ("read", "rpc") and plan.rpc_shape != "void":
            lower = plan.offset
            if count_total is not None and lower > count_total and lower != 0:
                return Response(
                    416,
                    {"content-type": "application/json; charset=utf-8", "content-range": f"*/{count_total}"},
                    ApiError(
                        416,
                        "PGRST103",
                        "Requested range not satisfiable",
                        details=f"An offset of {lower} was requested, but there are only {count_total} rows.",
                    ).body(),
                )
            range_part = "*" if n == 0 or count_total == 0 else f"{lower}-{lower + n - 1}"
            headers["content-range"] = f"{range_part}/{'*' if count_total is None else count_total}"
            status = 206 if count_total is not None and n < count_total and plan.kind == "read" else 200
        elif plan.kind == "update":
            headers["content-range"] = (
                f"{'*' if n == 0 else f'0-{n - 1}'}/{'*' if prefer.get('count') is None else n}"
            )
            status = 200 if body_text is not None else 204
        elif plan.kind in ("insert", "delete"):
            headers["content-range"] = f"*/{'*' if prefer.get('count') is None else n}"
            if plan.kind == "insert":
                status = 201
                if (
                    prefer.get("resolution") == "merge-duplicates"
                    and row[3] is not None
                    and int(str(row[3])) == 0
                    and body_text is not None
                ):
                    status = 200
                if plan.location_table is not None and body_text and n == 1:
                    loc = str(body_text).strip('{}"')
                    headers["location"] = f"/{plan.location_table.name}?{loc}"
                    body_text = None
                elif plan.location_table is not None:
                    body_text = None
            else:
                status = 200 if body_text is not None else 204
        else:
            status = 204
        applied = prefer.applied(plan.honoured)
        if applied:
            headers["preference-applied"] = applied
        if row[5]:
            try:
                status = int(str(row[5]))
            except ValueError as exc:
                raise ApiError(500, "PGRST112", "Invalid response.status: " + str(row[5])) from exc
        if row[4]:
            try:
                for item in orjson.loads(str(row[4])):
                    for k, v in item.items():
                        headers[k.lower()] = str(v)
            except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
                raise ApiError(500, "PGRST111", "Invalid response.headers") from exc
        if body_text is None or call.method == "HEAD":
            if status == 200 and plan.kind in ("insert",) and body_text is None:
                status = 201
            return Response(status, headers)
        media = plan.media.split(";")[0]
        if media == CSV:
            text = (plan.csv_header + "\n" + str(body_text)) if str(body_text) else "\n"
            headers["content-type"] = "text/csv; charset=utf-8"
            return Response(status, headers, text.encode())
        headers["content-type"] = (
            f"{media if media != ARRAY else JSON}; charset=utf-8"
            if media != OBJECT
            else f"{OBJECT}; charset=utf-8"
        )
        return Response(status, headers, str(body_text).encode())


def error_response(exc: ApiError) -> Response:
    """PostgREST's error answer for `exc`."""
    headers = {"content-type": "application/json; charset=utf-8"}
    if not exc.gateway:
        headers["proxy-status"] = f"PostgREST; error={exc.code}"
    if exc.status == 401:
        headers["www-authenticate"] = (
            f'Bearer error="invalid_token", error_description="{exc.www_authenticate}"'
            if exc.www_authenticate
            else "Bearer"
        )
    headers.update(exc.headers)
    return Response(exc.status, headers, exc.body())


def _db_error(exc: pg_errors.Error, anonymous: bool) -> ApiError:
    diag = exc.diag
    if diag.sqlstate is None and isinstance(exc, psycopg.DataError):
        # Refused by psycopg before it reached Postgres (a NUL byte in text): what Postgres would say, 22021.
        return ApiError(400, "22021", str(exc))
    code = diag.sqlstate or "XX000"
    message = diag.message_primary or str(exc)
    if code == "PGRST":
        try:
            custom = orjson.loads(message)
            extra = orjson.loads(diag.message_detail or "{}")
            return ApiError(
                int(extra.get("status", 400)),
                str(custom.get("code")),
                str(custom.get("message")),
                details=custom.get("details"),
                hint=custom.get("hint"),
                headers={k.lower(): str(v) for k, v in (extra.get("headers") or {}).items()},
            )
        except (orjson.JSONDecodeError, AttributeError, ValueError):
            return ApiError(500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error")
    status = status_for_sqlstate(code, message, anonymous)
    return ApiError(status, code, message, details=diag.message_detail, hint=diag.message_hint)


def _envelope(page: str, count_expr: str, media: str, head: bool, listing: list[tuple[str, str]]) -> str:
    body = "null::text" if head else _body_expr(media, listing)
    return f"select {count_expr}, count(_t), {body}, null::bigint, {_OVERRIDES} from ({page}) as _t"


def _body_expr(media: str, listing: list[tuple[str, str]]) -> str:
    base = media.split(";")[0]
    if base == CSV:
        # The whole row's record text, so repeated output names (select=id,id) are not ambiguous.
        record = "_t::text"
        return f"coalesce(string_agg(substring({record} from 2 for length({record}) - 2), E'\\n'), '')"
    stripped = "nulls=stripped" in media
    if base == OBJECT:
        expr = "(json_agg(_t) -> 0)"
        return f"json_strip_nulls({expr})::text" if stripped else f"{expr}::text"
    expr = "coalesce(json_agg(_t), '[]')"
    return f"json_strip_nulls({expr})::text" if stripped else f"{expr}::text"


def _csv_header(listing: list[tuple[str, str]]) -> str:
    return ",".join(k for _e, k in listing)


def _profile_sent(call: Call) -> bool:
    return "accept-profile" in call.headers or "content-profile" in call.headers


def _strict(prefer: Prefer) -> None:
    if prefer.get("handling") == "strict" and prefer.invalid:
        raise ApiError(
            400,
            "PGRST122",
            "Invalid preferences given with handling=strict",
            details="Invalid preferences: " + ", ".join(prefer.invalid),
        )


def _range(call: Call, node: Node) -> None:
    header = call.headers.get("range")
    if not header or call.method != "GET":
        return
    m = re.fullmatch(r"\s*(?:items=)?(\d+)-(\d*)\s*", header)
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
        return (
            "{"
            + ",".join(
                "NULL"
                if v is None
                else '"' + str(_text(v, depth + 1)).replace("\\", "\\\\").replace('"', '\\"') + '"'
                for v in value
            )
            + "}"
        )
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)
