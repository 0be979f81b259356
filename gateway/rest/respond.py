"""What goes back on the wire: the Response, the answer built from a statement's row (status, Content-Range,
Preference-Applied, Location, the body and its Content-Type), and PostgREST's error answer (docs/rest.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from busymate.gateway.rest.errors import ApiError
from busymate.gateway.rest.plan import Plan, ResultRow
from busymate.gateway.rest.request import ARRAY, CSV, JSON, OBJECT, Call, Prefer


@dataclass
class Response:
    """What goes back on the wire."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def respond(call: Call, plan: Plan, prefer: Prefer, row: ResultRow, total: int | None) -> Response:
    """The status, headers and body for the statement's row: Content-Range, Preference-Applied, Location, and
    what the statement set in response.status and response.headers."""
    counted = row.total if row.total is not None else total
    n = int(row.page_total or 0)
    body_text = row.body
    headers: dict[str, str] = {}
    count_total = None if counted is None else int(counted)
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
                and row.inserted is not None
                and int(row.inserted) == 0
                and body_text is not None
            ):
                status = 200
            if plan.location_table is not None and body_text and n == 1:
                loc = body_text.strip('{}"')
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
    if row.status:
        try:
            status = int(row.status)
        except ValueError as exc:
            raise ApiError(500, "PGRST112", "Invalid response.status: " + row.status) from exc
    if row.headers:
        try:
            for item in orjson.loads(row.headers):
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
        text = (plan.csv_header + "\n" + body_text) if body_text else "\n"
        headers["content-type"] = "text/csv; charset=utf-8"
        return Response(status, headers, text.encode())
    headers["content-type"] = (
        f"{media if media != ARRAY else JSON}; charset=utf-8"
        if media != OBJECT
        else f"{OBJECT}; charset=utf-8"
    )
    return Response(status, headers, body_text.encode())


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
