"""/rest/v1: one request, one transaction, one main statement whose row is the response (docs/rest.md).

This module routes: the OpenAPI root, a table or view (read.py, write.py), or /rpc/name (rpc.py); the plan
runs in execute.py and its row becomes the answer in respond.py.
"""

from __future__ import annotations

import orjson
from psycopg_pool import AsyncConnectionPool

from busymate.gateway.availability import Availability
from busymate.gateway.rest import execute, openapi, write
from busymate.gateway.rest.build import Builder
from busymate.gateway.rest.errors import ApiError
from busymate.gateway.rest.plan import Plan
from busymate.gateway.rest.read import apply_range, read, tree
from busymate.gateway.rest.relationships import similar
from busymate.gateway.rest.request import (
    ANON_ROLE,
    ARRAY,
    CSV,
    JSON,
    OBJECT,
    OPENAPI,
    Call,
    check_strict,
    parse_body,
    parse_query,
    pick_media,
)
from busymate.gateway.rest.respond import Response, error_response, respond
from busymate.gateway.rest.rpc import rpc
from busymate.gateway.rest.schema import Relation, SchemaCache

# What the server takes from here (gateway/server.py, kong.py, asgi.py).
__all__ = ["ANON_ROLE", "Call", "Response", "RestApi", "error_response"]


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
            plan = rpc(self.cache, self.max_rows, call, schema, fn_name)
        elif len(segments) == 1 and segments[0]:
            rel = self._relation(schema, segments[0])
            if call.method == "OPTIONS":
                return Response(200, {"allow": "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"})
            plan = self._table(call, rel)
        else:
            raise ApiError(404, "PGRST125", "Invalid path specified in request URL")
        if isinstance(plan, Response):
            return plan
        row, total = await execute.run(self.pool, self.cache, self.availability, call, plan, schema)
        response = respond(call, plan, call.preferences, row, total)
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
        """A table or view: read it, or write to it."""
        method = call.method
        if method not in ("GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"):
            raise ApiError(405, "PGRST117", f"Unsupported HTTP method: {method}")
        prefer = call.preferences
        check_strict(prefer)
        query = parse_query(call.query, rpc_get=False)
        builder = Builder(self.cache, self.max_rows)
        if method in ("GET", "HEAD"):
            media = pick_media(call.headers.get("accept"), (JSON, OBJECT, ARRAY, CSV))
            node = tree(builder, rel, query)
            apply_range(call, node)
            return read(builder, node, prefer, media, method == "HEAD")
        media = pick_media(call.headers.get("accept"), (JSON, OBJECT, ARRAY, CSV))
        if method == "DELETE":
            return write.delete(builder, rel, query, prefer, media)
        body = parse_body(call.headers.get("content-type"), call.body)
        if method == "PATCH":
            return write.update(builder, rel, query, prefer, media, body)
        if method == "PUT":
            raise ApiError(
                400,
                "PGRST127",
                "Feature not implemented",
                details="PUT is not supported; use POST with Prefer: resolution=merge-duplicates",
            )
        return write.insert(builder, rel, query, prefer, media, body)


def _profile_sent(call: Call) -> bool:
    return "accept-profile" in call.headers or "content-profile" in call.headers
